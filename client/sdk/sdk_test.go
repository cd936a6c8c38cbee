package sdk

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestCloudEntryPoint(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/cimi/cloudEntryPoint" {
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(`{"status":404,"code":"not_found","message":"Nothing here."}`))
			return
		}
		_, _ = w.Write([]byte(`{"id":"CloudEntryPoint","baseURI":"x"}`))
	}))
	defer srv.Close()

	cep, err := New(srv.URL + "/").CloudEntryPoint(context.Background())
	if err != nil || cep["id"] != "CloudEntryPoint" {
		t.Fatalf("CloudEntryPoint = %v, %v", cep, err)
	}
	var out map[string]any
	err = New(srv.URL).get(context.Background(), "/cimi/none", &out)
	var e *Error
	if !errors.As(err, &e) || e.Status != 404 || e.Code != "not_found" || e.Message != "Nothing here." {
		t.Fatalf("error = %#v", err)
	}
}
