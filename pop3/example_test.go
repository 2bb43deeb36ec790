package pop3_test

import (
	"context"
	"crypto/tls"
	"io"
	"log"
	"os"
	"time"

	"github.com/imapbridge/imapbridge/pop3"
)

func Example() {
	ctx := context.Background()
	c, err := pop3.Dial(ctx, "pop.example.org:995", pop3.Options{
		ImplicitTLS: true,
		TLSConfig:   &tls.Config{ServerName: "pop.example.org"},
		Timeout:     30 * time.Second,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Capa(ctx); err != nil {
		log.Fatal(err)
	}
	if err := c.Login(ctx, "alice", os.Getenv("POP3_PASSWORD")); err != nil {
		log.Fatal(err) // pop3.ErrorCode(err) tells IN-USE from AUTH
	}
	uidls, err := c.UIDL(ctx)
	if err != nil {
		log.Fatal(err)
	}
	nums := make([]pop3.MsgNum, len(uidls))
	for i, u := range uidls {
		nums[i] = u.Num
	}
	// Pipelined when the server advertises PIPELINING.
	err = c.RetrMany(ctx, nums, func(n pop3.MsgNum, r io.Reader) error {
		_, err := io.Copy(os.Stdout, r) // byte-exact, CRLF, streamed
		return err
	})
	if err != nil {
		log.Fatal(err)
	}
	if err := c.Quit(ctx); err != nil {
		log.Fatal(err)
	}
}
