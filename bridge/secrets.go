package bridge

import (
	"context"
	"fmt"
	"time"
)

// The store keeps per-user secrets (a passthrough user's source password,
// so polling resumes after a restart) as opaque bytes: the caller seals
// them before and opens them after; the bridge never sees a key.

// SetSecret stores a sealed secret of the user under name, replacing any.
func (u *User) SetSecret(ctx context.Context, name string, sealed []byte) error {
	return u.b.write(ctx, func(tx *wtx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO secrets(user_id, name, value, updated) VALUES (?,?,?,?)
			ON CONFLICT(user_id, name) DO UPDATE SET value=excluded.value, updated=excluded.updated`, u.id, name, sealed, time.Now().Unix())
		if err != nil {
			return fmt.Errorf("store: save secret: %w", err)
		}
		return nil
	})
}

// DeleteSecret removes a stored secret of the user.
func (u *User) DeleteSecret(ctx context.Context, name string) error {
	return u.b.write(ctx, func(tx *wtx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM secrets WHERE user_id=? AND name=?`, u.id, name)
		return err
	})
}

// Secrets returns every user's sealed secret called name, by user name.
func (b *Bridge) Secrets(ctx context.Context, name string) (map[string][]byte, error) {
	rows, err := b.rd.QueryContext(ctx, `SELECT u.name, s.value FROM secrets s JOIN users u ON u.id=s.user_id WHERE s.name=?`, name)
	if err != nil {
		return nil, fmt.Errorf("store: load secrets: %w", err)
	}
	defer rows.Close()
	out := make(map[string][]byte)
	for rows.Next() {
		var user string
		var v []byte
		if err := rows.Scan(&user, &v); err != nil {
			return nil, fmt.Errorf("store: load secrets: %w", err)
		}
		out[user] = v
	}
	return out, rows.Err()
}
