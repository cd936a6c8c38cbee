package sdk

import (
	"context"
	"net/http"
	"time"
)

// Session is what Login returns: who the cloud took you for, your roles,
// until when the token is good, and the token itself (a secret: keep it in
// a file only you can read).
type Session struct {
	Identity string    `json:"identity"`
	Roles    []string  `json:"roles"`
	Expires  time.Time `json:"expires"`
	Token    string    `json:"token"`
}

// Authn is the identity the cloud sees for the current credentials.
type Authn struct {
	Identity string    `json:"identity"`
	Roles    []string  `json:"roles"`
	Method   string    `json:"method"`
	Expires  time.Time `json:"expires,omitzero"`
}

// Login exchanges a username and password for a session token, which every
// later call of this client sends instead of the password.
func (c *Client) Login(ctx context.Context, username, password string) (*Session, error) {
	c.mu.Lock()
	// The login request itself carries the password in its body only.
	saved := [3]string{c.username, c.password, c.token}
	c.username, c.password, c.token = "", "", ""
	c.mu.Unlock()
	r, err := c.do(ctx, http.MethodPost, "login", nil, map[string]string{"username": username, "password": password})
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil {
		c.username, c.password, c.token = saved[0], saved[1], saved[2]
		return nil, err
	}
	var s Session
	if err := decode(r, "login", &s); err != nil {
		c.username, c.password, c.token = saved[0], saved[1], saved[2]
		return nil, err
	}
	c.token = s.Token
	return &s, nil
}

// Logout ends the client's session on the cloud, so its token is refused
// from now on, and forgets the token.
func (c *Client) Logout(ctx context.Context) error {
	_, err := c.do(ctx, http.MethodPost, "logout", nil, nil)
	c.mu.Lock()
	c.token = ""
	c.mu.Unlock()
	return err
}

// Authn asks the cloud who the current credentials are.
func (c *Client) Authn(ctx context.Context) (*Authn, error) {
	var a Authn
	if err := c.getJSON(ctx, "authn", nil, &a); err != nil {
		return nil, err
	}
	return &a, nil
}
