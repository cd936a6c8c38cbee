// Command stratus is the StratusLab command-line client. This first cut
// knows how to reach a cloud and show its entry point; the user commands
// (run-instance, create-volume, ...) build on the same SDK.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"

	"stratuslab.dev/client/sdk"
)

const version = "0.1.0"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("stratus", flag.ContinueOnError)
	fs.SetOutput(stderr)
	endpoint := fs.String("endpoint", envOr("STRATUSLAB_ENDPOINT", "http://127.0.0.1:8080"), "CIMI endpoint of the cloud")
	showVersion := fs.Bool("version", false, "print the client version")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: stratus [--endpoint URL] COMMAND\n\ncommands:\n  cloud-entry-point   show the cloud's entry point\n\noptions:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		return 2
	}
	if *showVersion {
		fmt.Fprintln(stdout, "stratus", version)
		return 0
	}
	switch fs.Arg(0) {
	case "cloud-entry-point":
		cep, err := sdk.New(*endpoint).CloudEntryPoint(ctx)
		if err != nil {
			fmt.Fprintln(stderr, "stratus:", err)
			return 1
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(cep)
		return 0
	case "":
		fs.Usage()
		return 2
	default:
		fmt.Fprintf(stderr, "stratus: unknown command %q (see stratus --help)\n", fs.Arg(0))
		return 2
	}
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}
