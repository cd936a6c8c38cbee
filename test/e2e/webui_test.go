package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"golang.org/x/crypto/bcrypt"
)

// chromium is Debian's browser, installed by scripts/deps.sh.
const chromium = "/usr/bin/chromium"

// browser starts a headless chromium with a fresh profile and returns a
// context whose actions drive one tab; it ends with the test.
func browser(t *testing.T) context.Context {
	t.Helper()
	if _, err := os.Stat(chromium); err != nil {
		t.Fatalf("the web UI test needs Debian's chromium at %s (%v): run `make deps` to install it", chromium, err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium),
		chromedp.Headless,
		// Tests run as root, where chromium's sandbox cannot start.
		chromedp.NoSandbox,
		chromedp.UserDataDir(t.TempDir()),
		// The all-in-one may serve HTTPS with its self-signed certificate.
		chromedp.Flag("ignore-certificate-errors", true),
	)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	actx, acancel := chromedp.NewExecAllocator(ctx, opts...)
	t.Cleanup(acancel)
	bctx, bcancel := chromedp.NewContext(actx)
	t.Cleanup(bcancel)
	if err := chromedp.Do(bctx); err != nil {
		t.Fatalf("start %s: %v (run `make deps` if it is missing or broken)", chromium, err)
	}
	return bctx
}

// tab opens a tab in a browser context of its own (cookies included), so
// that a subtest starts logged out whatever the one before it left.
func tab(t *testing.T, browser context.Context) context.Context {
	t.Helper()
	ctx, cancel := chromedp.NewContext(browser, chromedp.WithNewBrowserContext())
	t.Cleanup(cancel)
	// The first run opens the tab and binds it to its context: it must
	// not be one of the steps' short-lived contexts, or the tab would
	// close with the step.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("open a browser tab: %v", err)
	}
	return ctx
}

// run runs browser actions, failing the test with what step did not work.
func run(t *testing.T, ctx context.Context, step string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	// A step that waits for an element that never comes fails after a
	// while with the page it was on, rather than at the test's timeout.
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(sctx, actions...); err != nil {
		var loc, body string
		dctx, dcancel := context.WithTimeout(ctx, 10*time.Second)
		defer dcancel()
		_ = chromedp.Do(dctx, into(chromedp.Location(), &loc), into(chromedp.Text(chromedp.CSS("body")), &body))
		t.Fatalf("%s: %v\npage %s:\n%s", step, err, loc, body)
	}
}

// into makes an action that stores the value of a into dst, so that
// reading steps can sit in one list with the others.
func into[T any](a chromedp.Action[T], dst *T) chromedp.Action[chromedp.Void] {
	return func(ctx context.Context, t *chromedp.Target) (chromedp.Void, error) {
		v, err := a(ctx, t)
		*dst = v
		return chromedp.Void{}, err
	}
}

// mainText is the text of the page's main part.
func mainText(t *testing.T, ctx context.Context) string {
	t.Helper()
	var s string
	run(t, ctx, "read the page", into(chromedp.Text(chromedp.CSS("main")), &s))
	return s
}

// webLogin logs in from the header's login link and checks the header
// then shows the user.
func webLogin(t *testing.T, ctx context.Context, base, user, password string) {
	t.Helper()
	var who string
	run(t, ctx, "log in as "+user,
		chromedp.Navigate(base+"/webui/"),
		chromedp.Click(chromedp.CSS("#login")),
		chromedp.WaitVisible(chromedp.CSS("#username")),
		chromedp.SendKeys(chromedp.CSS("#username"), user),
		chromedp.SendKeys(chromedp.CSS("#password"), password),
		chromedp.Click(chromedp.CSS("#login-submit")),
		chromedp.WaitVisible(chromedp.CSS("#user")),
		into(chromedp.Text(chromedp.CSS("#user")), &who),
	)
	if who != user {
		t.Fatalf("logged in as %q, the header shows %q", user, who)
	}
}

// webLogout logs out with the header's button and checks the login link
// is back.
func webLogout(t *testing.T, ctx context.Context) {
	t.Helper()
	run(t, ctx, "log out",
		chromedp.Click(chromedp.CSS("#logout")),
		chromedp.WaitVisible(chromedp.CSS("#login")),
	)
}

// editJSON opens the resource's editor, lets change rewrite its document
// and saves, then waits for an element matching done on the page the save
// leads to.
func editJSON(t *testing.T, ctx context.Context, change func(map[string]any), done string) {
	t.Helper()
	var text string
	run(t, ctx, "open the editor",
		chromedp.Click(chromedp.CSS("#edit")),
		chromedp.WaitVisible(chromedp.CSS("#json")),
		into(chromedp.Value(chromedp.CSS("#json")), &text),
	)
	var doc map[string]any
	if err := json.Unmarshal([]byte(text), &doc); err != nil {
		t.Fatalf("the editor does not hold a JSON object: %v\n%s", err, text)
	}
	if _, ok := doc["operations"]; ok {
		t.Errorf("the editor holds the operations: %s", text)
	}
	change(doc)
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	run(t, ctx, "save the edit",
		chromedp.SetValue(chromedp.CSS("#json"), string(b)),
		chromedp.Click(chromedp.CSS("#save")),
		chromedp.WaitVisible(chromedp.CSS(done)),
	)
}

// waitReady waits until the services answer their readiness probe: the
// gateway is ready to log people in once it holds authn's session keys.
func waitReady(t *testing.T, c *cloud, services ...string) {
	t.Helper()
	for _, s := range services {
		health, ok := c.health[s]
		if !ok {
			t.Fatalf("no health URL for %s in the banner", s)
		}
		ready := strings.TrimSuffix(health, "/healthz") + "/readyz"
		var status int
		var body string
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			if status, body = get(context.Background(), t, ready); status == http.StatusOK {
				break
			}
		}
		if status != http.StatusOK {
			t.Fatalf("%s is not ready after 30s: %d %s\nstderr:\n%s", s, status, body, c.stderr)
		}
	}
}

// TestWebUI follows the administrator guide's web walkthrough in a real
// browser against the all-in-one: log in, create, edit and delete a
// ServiceMessage, log out; then change the administrator's password on
// the User page and log in with the new one.
func TestWebUI(t *testing.T) {
	b := browser(t)
	c := newCloud(t)
	c.start()
	defer func() {
		if err := c.stop(); err != nil {
			t.Errorf("SIGTERM: %v\nstderr:\n%s", err, c.stderr)
		}
	}()
	u, err := url.Parse(c.endpoint)
	if err != nil {
		t.Fatal(err)
	}
	base := u.Scheme + "://" + u.Host
	password := adminPassword(t, c)

	t.Run("the guide's address leads to the CloudEntryPoint", func(t *testing.T) {
		ctx := tab(t, b)
		var loc string
		run(t, ctx, "open /cimi/webui",
			chromedp.Navigate(base+"/cimi/webui"),
			chromedp.WaitVisible(chromedp.CSS(`a[href="/webui/ServiceMessage"]`)),
			chromedp.WaitVisible(chromedp.CSS("#login")),
			into(chromedp.Location(), &loc),
		)
		if loc != base+"/webui/" {
			t.Errorf("at %s, want %s/webui/", loc, base)
		}
		if text := mainText(t, ctx); !strings.Contains(text, "User") {
			t.Errorf("the CloudEntryPoint page lacks the User collection:\n%s", text)
		}
	})

	waitReady(t, c, "cimi", "authn")
	t.Run("ServiceMessage", func(t *testing.T) {
		ctx := tab(t, b)
		webLogin(t, ctx, base, "admin", password)
		const (
			title = "StratusLab is Alive!"
			desc  = "Deploying StratusLab clouds is fun."
			newer = "Deploying StratusLab clouds is still fun."
		)
		run(t, ctx, "add a ServiceMessage",
			chromedp.Click(chromedp.CSS(`a[href="/webui/ServiceMessage"]`)),
			chromedp.WaitVisible(chromedp.CSS("#add")),
			chromedp.Click(chromedp.CSS("#add")),
			chromedp.WaitVisible(chromedp.CSS("#json")),
			chromedp.SetValue(chromedp.CSS("#json"), `{"name": "`+title+`", "description": "`+desc+`"}`),
			chromedp.Click(chromedp.CSS("#save")),
			chromedp.WaitVisible(chromedp.CSS("#view-json")),
		)
		var loc string
		run(t, ctx, "where the save led", into(chromedp.Location(), &loc))
		if !strings.Contains(loc, "/webui/ServiceMessage/") {
			t.Fatalf("saving a new message led to %s, not to the message", loc)
		}
		if text := mainText(t, ctx); !strings.Contains(text, title) || !strings.Contains(text, desc) {
			t.Fatalf("the new message's page does not show it:\n%s", text)
		}

		var js string
		run(t, ctx, "view json",
			chromedp.Click(chromedp.CSS("#view-json")),
			chromedp.WaitVisible(chromedp.CSS("pre#json")),
			into(chromedp.Text(chromedp.CSS("pre#json")), &js),
			chromedp.Navigate(loc),
			chromedp.WaitVisible(chromedp.CSS("#edit")),
		)
		var doc map[string]any
		if err := json.Unmarshal([]byte(js), &doc); err != nil || doc["name"] != title {
			t.Errorf("view json shows %v (%v):\n%s", doc, err, js)
		}

		editJSON(t, ctx, func(d map[string]any) { d["description"] = newer }, "#view-json")
		if text := mainText(t, ctx); !strings.Contains(text, newer) {
			t.Fatalf("the edited message's page does not show the new description:\n%s", text)
		}

		run(t, ctx, "delete the message",
			chromedp.Click(chromedp.CSS("#delete")),
			chromedp.WaitVisible(chromedp.CSS("#confirm-delete")),
			chromedp.Click(chromedp.CSS("#confirm-delete")),
			chromedp.WaitVisible(chromedp.CSS("#range")),
			into(chromedp.Location(), &loc),
		)
		if !strings.HasSuffix(loc, "/webui/ServiceMessage") {
			t.Errorf("deleting led to %s, not to the collection", loc)
		}
		if text := mainText(t, ctx); strings.Contains(text, title) {
			t.Errorf("the collection still lists the deleted message:\n%s", text)
		}
		webLogout(t, ctx)
	})

	t.Run("a form from another site is refused", func(t *testing.T) {
		req, err := http.NewRequest(http.MethodPost, base+"/webui/login", strings.NewReader(url.Values{"username": {"admin"}, "password": {password}}.Encode()))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", "http://evil.example")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("a cross-site login form got %d, want 403", resp.StatusCode)
		}
	})

	t.Run("Volume lifecycle", func(t *testing.T) {
		ctx := tab(t, b)
		webLogin(t, ctx, base, "admin", password)
		var id, state, mounted, tag, vis string
		run(t, ctx, "create a 2 GiB disk from the form",
			chromedp.Navigate(base+"/webui/Volume"),
			chromedp.Click(chromedp.CSS("#add")),
			chromedp.WaitVisible(chromedp.CSS("#create-form")),
			chromedp.SendKeys(chromedp.CSS("#create-size"), "2"),
			chromedp.SendKeys(chromedp.CSS("#create-tag"), "web-disk"),
			chromedp.Click(chromedp.CSS("#create-submit")),
			chromedp.WaitVisible(chromedp.CSS("#attr-uuid")),
			into(chromedp.Text(chromedp.CSS("#attr-uuid")), &id),
			into(chromedp.Text(chromedp.CSS("#attr-state")), &state),
			into(chromedp.Text(chromedp.CSS("#attr-mounted-on")), &mounted),
		)
		id = strings.TrimSpace(id)
		if len(id) != 36 || strings.TrimSpace(state) != "AVAILABLE" || strings.TrimSpace(mounted) != "—" {
			t.Fatalf("the new disk's page: uuid %q state %q mounted on %q", id, state, mounted)
		}
		if _, err := os.Stat(c.dataDir + "/pdisk/volumes/" + id + ".qcow2"); err != nil {
			t.Errorf("the disk made in the browser has no storage: %v", err)
		}
		run(t, ctx, "change its tag and make it public",
			chromedp.Clear(chromedp.CSS("#edit-tag")),
			chromedp.SendKeys(chromedp.CSS("#edit-tag"), "web-renamed"),
			chromedp.Click(chromedp.CSS("#edit-visibility-public")),
			chromedp.Click(chromedp.CSS("#edit-submit")),
		)
		// The page before the submit has the same elements: wait for the
		// answer's page rather than read the old one.
		for deadline := time.Now().Add(20 * time.Second); strings.TrimSpace(tag) != "web-renamed" && time.Now().Before(deadline); {
			time.Sleep(100 * time.Millisecond)
			run(t, ctx, "read the tag", chromedp.WaitVisible(chromedp.CSS("#attr-tag")), into(chromedp.Text(chromedp.CSS("#attr-tag")), &tag))
		}
		run(t, ctx, "read the visibility", into(chromedp.Text(chromedp.CSS("#attr-visibility")), &vis))
		if strings.TrimSpace(tag) != "web-renamed" || strings.TrimSpace(vis) != "PUBLIC" {
			t.Errorf("after the edit: tag %q visibility %q", tag, vis)
		}
		run(t, ctx, "find it with the tag filter",
			chromedp.Navigate(base+"/webui/Volume"),
			chromedp.WaitVisible(chromedp.CSS("#quick-tag")),
			chromedp.SendKeys(chromedp.CSS("#quick-tag"), "web-renamed"),
			chromedp.Click(chromedp.CSS("#search-submit")),
			// #clear is on filtered lists only: the answer's page, not the
			// list the search was typed on (which has the row too).
			chromedp.WaitVisible(chromedp.CSS("#clear")),
			chromedp.WaitVisible(chromedp.CSS("#row-"+id)),
		)
		run(t, ctx, "delete it",
			chromedp.Navigate(base+"/webui/Volume/"+id),
			chromedp.Click(chromedp.CSS("#delete")),
			chromedp.WaitVisible(chromedp.CSS("#confirm-delete")),
			chromedp.Click(chromedp.CSS("#confirm-delete")),
			chromedp.WaitVisible(chromedp.CSS("#add")),
		)
		if text := mainText(t, ctx); strings.Contains(text, id) {
			t.Errorf("the deleted disk is still listed:\n%s", text)
		}
		if _, err := os.Stat(c.dataDir + "/pdisk/volumes/" + id + ".qcow2"); !os.IsNotExist(err) {
			t.Errorf("the deleted disk's storage is still there: %v", err)
		}
		webLogout(t, ctx)
	})

	t.Run("change the administrator's password", func(t *testing.T) {
		ctx := tab(t, b)
		const fresh = "a new memorable password"
		hash, err := bcrypt.GenerateFromPassword([]byte(fresh), 12)
		if err != nil {
			t.Fatal(err)
		}
		webLogin(t, ctx, base, "admin", password)
		run(t, ctx, "open User/admin",
			chromedp.Navigate(base+"/webui/"),
			chromedp.Click(chromedp.CSS(`a[href="/webui/User"]`)),
			chromedp.WaitVisible(chromedp.CSS(`a[href="/webui/User/admin"]`)),
			chromedp.Click(chromedp.CSS(`a[href="/webui/User/admin"]`)),
			chromedp.WaitVisible(chromedp.CSS("#edit")),
		)
		// Unlike the original server, authn never shows the hash, and a
		// new password ends the user's sessions: the save leads back to
		// the user's page, or to the login form saying why when this
		// session ended with the change.
		editJSON(t, ctx, func(d map[string]any) { d["password"] = string(hash) }, "#view-json, #login")
		var user []*chromedp.Node
		run(t, ctx, "see whether the session survived", into(chromedp.Nodes(chromedp.CSS("#logout"), chromedp.AtLeast(0)), &user))
		if len(user) > 0 {
			webLogout(t, ctx)
		} else {
			run(t, ctx, "see why the session ended", chromedp.WaitVisible(chromedp.CSS("#notice")))
		}
		if text := mainText(t, ctx); strings.Contains(text, string(hash)) {
			t.Errorf("the page shows the password hash:\n%s", text)
		}

		var msg string
		run(t, ctx, "log in with the old password",
			chromedp.Click(chromedp.CSS("#login")),
			chromedp.WaitVisible(chromedp.CSS("#username")),
			chromedp.SendKeys(chromedp.CSS("#username"), "admin"),
			chromedp.SendKeys(chromedp.CSS("#password"), password),
			chromedp.Click(chromedp.CSS("#login-submit")),
			chromedp.WaitVisible(chromedp.CSS(".error")),
			into(chromedp.Text(chromedp.CSS(".error")), &msg),
		)
		if msg == "" {
			t.Error("a refused login shows no message")
		}
		webLogin(t, ctx, base, "admin", fresh)
		webLogout(t, ctx)
	})
}
