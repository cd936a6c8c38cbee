// Package sdk is the typed Go client of the StratusLab CIMI API, used by
// the stratus command and the end-to-end tests.
package sdk

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// Client talks to one cloud's CIMI endpoint.
type Client struct {
	endpoint string
	http     *http.Client
}

// New returns a client for the cloud at endpoint, e.g.
// "http://127.0.0.1:8080" or "https://cloud.example.org".
func New(endpoint string) *Client {
	return &Client{
		endpoint: strings.TrimRight(endpoint, "/"),
		http:     &http.Client{Timeout: 30 * time.Second},
	}
}

// Error is a CIMI error answered by the cloud.
type Error struct {
	Status  int    `json:"status"`
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (e *Error) Error() string {
	return fmt.Sprintf("%s (%d %s)", e.Message, e.Status, e.Code)
}

// CloudEntryPoint returns the cloud's entry point: its identity and one
// {href} per collection it serves.
func (c *Client) CloudEntryPoint(ctx context.Context) (map[string]any, error) {
	var cep map[string]any
	err := c.get(ctx, "/cimi/cloudEntryPoint", &cep)
	return cep, err
}

func (c *Client) get(ctx context.Context, path string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.endpoint+path, nil)
	if err != nil {
		return fmt.Errorf("GET %s: %w", path, err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("cannot reach the cloud at %s: %w", c.endpoint, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("GET %s: %w", path, err)
	}
	if resp.StatusCode >= 300 {
		e := &Error{Status: resp.StatusCode, Message: strings.TrimSpace(string(body))}
		_ = json.Unmarshal(body, e)
		return e
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("GET %s: the cloud answered something that is not JSON: %w", path, err)
	}
	return nil
}
