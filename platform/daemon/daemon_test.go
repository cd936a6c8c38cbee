package daemon

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"
)

func TestGroup(t *testing.T) {
	t.Parallel()
	boom := errors.New("boom")
	tests := []struct {
		name   string
		cancel bool // cancel the parent instead of failing
		fail   error
		want   error
	}{
		{"one fails, all stop", false, boom, boom},
		{"parent ends, all stop cleanly", true, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var stopped atomic.Int32
			waiter := func(ctx context.Context) error {
				<-ctx.Done()
				stopped.Add(1)
				return nil
			}
			trigger := func(ctx context.Context) error {
				if tt.cancel {
					cancel()
					<-ctx.Done()
					return nil
				}
				return tt.fail
			}
			done := make(chan error, 1)
			go func() { done <- Group(ctx, waiter, trigger, waiter) }()
			select {
			case err := <-done:
				if !errors.Is(err, tt.want) && err != tt.want {
					t.Errorf("Group = %v, want %v", err, tt.want)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("Group did not return")
			}
			if n := stopped.Load(); n != 2 {
				t.Errorf("%d of 2 waiting functions stopped before Group returned", n)
			}
		})
	}
}

func TestCommonValidate(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		level string
		ok    bool
	}{{"", true}, {"debug", true}, {"WARN", true}, {"info+2", true}, {"chatty", false}} {
		if err := (Common{LogLevel: tt.level}).Validate(); (err == nil) != tt.ok {
			t.Errorf("Validate(%q) = %v", tt.level, err)
		}
	}
}

func TestStopped(t *testing.T) {
	t.Parallel()
	boom := errors.New("boom")
	live := context.Background()
	ended, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name string
		ctx  context.Context
		err  error
		want error
	}{
		{"no error", live, nil, nil},
		{"cancelled while running is a failure", live, context.Canceled, context.Canceled},
		{"cancelled by the stop is clean", ended, fmt.Errorf("cimi: open: %w", context.Canceled), nil},
		{"a real error during the stop stays", ended, boom, boom},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := Stopped(tt.ctx, tt.err); !errors.Is(got, tt.want) && got != tt.want {
				t.Errorf("Stopped = %v, want %v", got, tt.want)
			}
		})
	}
}
