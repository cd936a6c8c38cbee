package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"golang.org/x/crypto/bcrypt"

	"stratuslab.dev/client/sdk"
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

// leave runs actions that leave the page (a form's submit, a link) and
// waits for the page they lead to. The page is marked first: the pages
// before and after an action often have the same elements, and no step
// may read the one it just left.
func leave(t *testing.T, ctx context.Context, step string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	var marked bool
	steps := []chromedp.Action[chromedp.Void]{
		into(chromedp.Evaluate[bool](`document.documentElement.dataset.left = "1"; true`), &marked),
	}
	steps = append(steps, actions...)
	steps = append(steps, chromedp.WaitReady(chromedp.CSS("html:not([data-left]) main")),
		// The new page is there; wait until it is all there.
		chromedp.Poll[chromedp.Void](`document.readyState === "complete"`))
	run(t, ctx, step, steps...)
}

// reloadUntil opens page until the text of the element matching sel
// holds want, and returns that text; it fails the test after 20 s with
// what the element showed last.
func reloadUntil(t *testing.T, ctx context.Context, page, sel, want string) string {
	t.Helper()
	var got string
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		run(t, ctx, "open "+page,
			chromedp.Navigate(page),
			chromedp.WaitVisible(chromedp.CSS(sel)),
			into(chromedp.Text(chromedp.CSS(sel)), &got),
		)
		if strings.Contains(got, want) {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %s shows %q after 20s, want %q\n%s", page, sel, got, want, mainText(t, ctx))
		}
	}
}

// pageError is the error message the page shows, "" when none.
func pageError(t *testing.T, ctx context.Context) string {
	t.Helper()
	var nodes []*chromedp.Node
	var msg string
	run(t, ctx, "look for an error message", into(chromedp.Nodes(chromedp.CSS("main .error"), chromedp.AtLeast(0)), &nodes))
	if len(nodes) > 0 {
		run(t, ctx, "read the error message", into(chromedp.Text(chromedp.CSS("main .error")), &msg))
	}
	return strings.TrimSpace(msg)
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

	t.Run("Machine lifecycle", func(t *testing.T) {
		webMachines(t, b, base, password)
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

// webMachines runs a machine's life from its pages as a user: the empty
// list, run from the form, Running with its details, a volume attached
// and detached, stop, start, kill, Done with its volumes free again; bad
// input refused with the API's message; then the Host pages as the
// administrator: maintenance and back.
func webMachines(t *testing.T, b context.Context, base, password string) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	admin := sdk.New(base, sdk.WithBasicAuth("admin", password))
	create(ctx, t, admin, "User", map[string]any{
		"username": "carol", "password": "carol-secret-pw", "enabled": true,
		"first-name": "Carol", "last-name": "Tester", "email": "carol@example.org",
	})
	carol := sdk.New(base, sdk.WithBasicAuth("carol", "carol-secret-pw"))
	spare := strings.TrimPrefix(create(ctx, t, carol, "Volume", map[string]any{"size": 1, "tag": "web-spare"}), "Volume/")

	tb := tab(t, b)
	webLogin(t, tb, base, "carol", "carol-secret-pw")
	var listed string
	run(t, tb, "open the empty machine list",
		chromedp.Navigate(base+"/webui/Machine"),
		chromedp.WaitVisible(chromedp.CSS("#range")),
		into(chromedp.Text(chromedp.CSS("#range")), &listed),
	)
	if strings.TrimSpace(listed) != "0 of 0" {
		t.Errorf("a new user's machine list shows %q, want 0 of 0:\n%s", listed, mainText(t, tb))
	}

	var root string
	run(t, tb, "create the root disk from the volume form",
		chromedp.Navigate(base+"/webui/Volume?op=add"),
		chromedp.WaitVisible(chromedp.CSS("#create-form")),
		chromedp.SendKeys(chromedp.CSS("#create-size"), "1"),
		chromedp.SendKeys(chromedp.CSS("#create-tag"), "web-root"),
	)
	leave(t, tb, "save the root disk", chromedp.Click(chromedp.CSS("#create-submit")))
	run(t, tb, "read the root disk's uuid", into(chromedp.Text(chromedp.CSS("#attr-uuid")), &root))
	root = strings.TrimSpace(root)

	run(t, tb, "fill in the run form",
		chromedp.Navigate(base+"/webui/Machine"),
		chromedp.WaitVisible(chromedp.CSS("#add")),
		chromedp.Click(chromedp.CSS("#add")),
		chromedp.WaitVisible(chromedp.CSS("#create-form")),
		chromedp.SendKeys(chromedp.CSS("#create-image"), root),
		chromedp.SetValue(chromedp.CSS("#create-type"), "t1.micro"),
		chromedp.SendKeys(chromedp.CSS("#create-name"), "web-vm"),
	)
	leave(t, tb, "run the machine", chromedp.Click(chromedp.CSS("#create-submit")))
	var page string
	run(t, tb, "where the run led", into(chromedp.Location(), &page))
	id, ok := strings.CutPrefix(page, base+"/webui/Machine/")
	if !ok || len(id) != 36 {
		t.Fatalf("running a machine led to %s, not to its page:\n%s", page, mainText(t, tb))
	}

	state := reloadUntil(t, tb, page, "#attr-state", "Running")
	if !strings.Contains(state, "STARTED") {
		t.Errorf("a running machine's state shows %q, want the DMTF STARTED beside Running", state)
	}
	attrs := map[string]string{}
	for _, a := range []string{"vmId", "uuid", "name", "type", "cpu", "memory", "swap", "image", "ip", "hostname", "disks", "interfaces"} {
		var v string
		run(t, tb, "read "+a, into(chromedp.Text(chromedp.CSS("#attr-"+a)), &v))
		attrs[a] = strings.TrimSpace(v)
	}
	var m struct {
		VMID     int    `json:"vmId"`
		IP       string `json:"ip"`
		Hostname string `json:"hostname"`
	}
	if err := carol.Get(ctx, "Machine/"+id, &m); err != nil {
		t.Fatal(err)
	}
	for a, want := range map[string]string{"vmId": strconv.Itoa(m.VMID), "uuid": id, "name": "web-vm", "type": "t1.micro",
		"cpu": "1", "memory": "512 MiB", "swap": "512 MiB", "ip": m.IP, "hostname": m.Hostname} {
		if attrs[a] != want || want == "" {
			t.Errorf("the machine's page shows %s %q, want %q", a, attrs[a], want)
		}
	}
	if !strings.Contains(attrs["image"], root) {
		t.Errorf("the machine's page shows image %q, want the volume %s", attrs["image"], root)
	}
	var rootRow string
	run(t, tb, "read the root disk's row", into(chromedp.Text(chromedp.CSS("#disk-vda")), &rootRow))
	if !strings.Contains(rootRow, root) || !strings.Contains(rootRow, "root") || !strings.Contains(rootRow, "at launch") {
		t.Errorf("the disk vda row shows %q, want the root volume %s attached at launch", rootRow, root)
	}

	var row string
	run(t, tb, "find it in the list",
		chromedp.Navigate(base+"/webui/Machine"),
		chromedp.WaitVisible(chromedp.CSS("#row-"+id)),
		into(chromedp.Text(chromedp.CSS("#row-"+id)), &row),
	)
	if !strings.Contains(row, "Running") || !strings.Contains(row, strconv.Itoa(m.VMID)) || !strings.Contains(row, "web-vm") {
		t.Errorf("the list shows the machine as %q", row)
	}

	// The test driver has no hot-plug: vmctl's agent adds the disk to the
	// definition, which the API answers as attached.
	run(t, tb, "type the spare volume in the attach form",
		chromedp.Navigate(page),
		chromedp.WaitVisible(chromedp.CSS("#attach-volume")),
		chromedp.SendKeys(chromedp.CSS("#attach-volume"), spare),
	)
	leave(t, tb, "attach it", chromedp.Click(chromedp.CSS("#attach-submit")))
	if msg := pageError(t, tb); msg != "" {
		t.Fatalf("attaching a volume: %s", msg)
	}
	var disks string
	run(t, tb, "see the attached disk",
		chromedp.WaitVisible(chromedp.CSS("#detach-"+spare)),
		into(chromedp.Text(chromedp.CSS("#attr-disks")), &disks),
	)
	if !strings.Contains(disks, spare) || !strings.Contains(disks, "hot-plugged") {
		t.Errorf("after the attach the disks show:\n%s", disks)
	}
	if v := volumeOf(ctx, t, carol, spare); v.State != "IN_USE" || v.Machine != "Machine/"+id {
		t.Errorf("the attached volume: %+v", v)
	}
	leave(t, tb, "detach it", chromedp.Click(chromedp.CSS("#detach-"+spare)))
	run(t, tb, "see it gone", into(chromedp.Text(chromedp.CSS("#attr-disks")), &disks))
	if strings.Contains(disks, spare) || pageError(t, tb) != "" {
		t.Errorf("after the detach the page shows %q, error %q", disks, pageError(t, tb))
	}
	if v := volumeOf(ctx, t, carol, spare); v.State != "AVAILABLE" || v.Machine != "" {
		t.Errorf("the detached volume: %+v", v)
	}
	run(t, tb, "attach it again", chromedp.SendKeys(chromedp.CSS("#attach-volume"), spare))
	leave(t, tb, "submit the attach form", chromedp.Click(chromedp.CSS("#attach-submit")))
	run(t, tb, "see it attached", chromedp.WaitVisible(chromedp.CSS("#detach-"+spare)))

	for _, step := range []struct{ button, want string }{{"action-stop", "Stopped"}, {"action-start", "Running"}} {
		leave(t, tb, "click "+step.button, chromedp.Click(chromedp.CSS("#"+step.button)))
		if msg := pageError(t, tb); msg != "" {
			t.Fatalf("%s: %s", step.button, msg)
		}
		reloadUntil(t, tb, page, "#attr-state", step.want)
	}

	run(t, tb, "ask to kill it",
		chromedp.Click(chromedp.CSS("#kill")),
		chromedp.WaitVisible(chromedp.CSS("#confirm-kill")),
	)
	leave(t, tb, "confirm the kill", chromedp.Click(chromedp.CSS("#confirm-kill")))
	reloadUntil(t, tb, page, "#attr-state", "Done")
	var left []*chromedp.Node
	run(t, tb, "look for what a Done machine offers",
		into(chromedp.Nodes(chromedp.CSS(`#kill, [id^="action-"], #attach-form, [id^="detach-"]`), chromedp.AtLeast(0)), &left))
	if len(left) > 0 {
		t.Errorf("a Done machine's page still offers %d actions:\n%s", len(left), mainText(t, tb))
	}
	for _, v := range []string{root, spare} {
		eventually(ctx, t, "volume "+v+" to be free after the kill", func() bool {
			got := volumeOf(ctx, t, carol, v)
			return got.State == "AVAILABLE" && got.Machine == "" && len(got.Attachments) == 0
		})
	}

	// Bad input: the browser's own checks are set aside, as a stale form
	// or a hand-made request would, to show the server's answer.
	before := countMachines(ctx, t, carol)
	for _, bad := range []struct {
		name, script, want string
	}{
		{"unknown type", `(() => { const s = document.getElementById("create-type"); s.add(new Option("m9.huge", "m9.huge")); s.value = "m9.huge"; return true })()`,
			`Unknown machine type "m9.huge"`},
		{"cpu 0", `(() => { document.getElementById("create-cpu").value = "0"; return true })()`, "CPUs, not 0"},
	} {
		var done bool
		run(t, tb, "fill in the run form with "+bad.name,
			chromedp.Navigate(base+"/webui/Machine?op=add"),
			chromedp.WaitVisible(chromedp.CSS("#create-form")),
			chromedp.SendKeys(chromedp.CSS("#create-image"), root),
			into(chromedp.Evaluate[bool](`document.getElementById("create-form").noValidate = true`), &done),
			into(chromedp.Evaluate[bool](bad.script), &done),
		)
		leave(t, tb, "run with "+bad.name, chromedp.Click(chromedp.CSS("#create-submit")))
		var image string
		run(t, tb, "read the form again", chromedp.WaitVisible(chromedp.CSS("#create-form")), into(chromedp.Value(chromedp.CSS("#create-image")), &image))
		if msg := pageError(t, tb); !strings.Contains(msg, bad.want) {
			t.Errorf("%s: the page says %q, want the API's message with %q", bad.name, msg, bad.want)
		}
		if image != root {
			t.Errorf("%s: the form came back with image %q, want what was typed", bad.name, image)
		}
	}
	if after := countMachines(ctx, t, carol); after != before {
		t.Errorf("bad input made machines: %d, then %d", before, after)
	}
	webLogout(t, tb)

	webHost(ctx, t, b, base, password, admin)
}

// volumeOf reads what the Volume API says of a volume's use.
func volumeOf(ctx context.Context, t *testing.T, c *sdk.Client, uuid string) (v struct {
	State       string
	Machine     string
	Attachments []any
}) {
	t.Helper()
	if err := c.Get(ctx, "Volume/"+uuid, &v); err != nil {
		t.Fatalf("read volume %s: %v", uuid, err)
	}
	return v
}

// webHost puts the all-in-one's host in maintenance and back from its
// page, as the administrator.
func webHost(ctx context.Context, t *testing.T, b context.Context, base, password string, admin *sdk.Client) {
	_, hs, err := sdk.QueryAs[struct{ ID string }](ctx, admin, "Host", sdk.Query{})
	if err != nil || len(hs) != 1 {
		t.Fatalf("the all-in-one's hosts: %v %v", hs, err)
	}
	host := strings.TrimPrefix(hs[0].ID, "Host/")
	tb := tab(t, b)
	webLogin(t, tb, base, "admin", password)
	var row string
	run(t, tb, "find the host in the Host list",
		chromedp.Navigate(base+"/webui/Host"),
		chromedp.WaitVisible(chromedp.CSS("#row-"+host)),
		into(chromedp.Text(chromedp.CSS("#row-"+host)), &row),
	)
	if !strings.Contains(row, "AVAILABLE") || !strings.Contains(row, "false") {
		t.Errorf("the Host list shows the host as %q, want it AVAILABLE and not in maintenance", row)
	}
	leave(t, tb, "open the host", chromedp.Click(chromedp.CSS(`#row-`+host+` a[href="/webui/Host/`+host+`"]`)))
	// Its agent describes a host: the page offers no edit, which vmctl
	// would refuse.
	var edits int
	run(t, tb, "look for an edit button", chromedp.WaitVisible(chromedp.CSS("#action-maintenance")),
		into(chromedp.Evaluate[int](`document.querySelectorAll("#edit, #edit-json").length`), &edits))
	if edits != 0 {
		t.Errorf("the host page offers %d edit buttons, want none", edits)
	}
	for _, step := range []struct {
		button, want string
	}{{"action-maintenance", "true"}, {"action-enable", "false"}} {
		run(t, tb, "see "+step.button, chromedp.WaitVisible(chromedp.CSS("#action-maintenance")), chromedp.WaitVisible(chromedp.CSS("#action-enable")))
		leave(t, tb, "click "+step.button, chromedp.Click(chromedp.CSS("#"+step.button)))
		if msg := pageError(t, tb); msg != "" {
			t.Fatalf("%s: %s", step.button, msg)
		}
		var shown string
		run(t, tb, "read maintenance", into(chromedp.Text(chromedp.CSS("#attr-maintenance")), &shown))
		var h struct{ Maintenance bool }
		if err := admin.Get(ctx, "Host/"+host, &h); err != nil {
			t.Fatal(err)
		}
		if strings.TrimSpace(shown) != step.want || strconv.FormatBool(h.Maintenance) != step.want {
			t.Errorf("after %s the page shows maintenance %q, the API %v; want %s", step.button, shown, h.Maintenance, step.want)
		}
	}
	webLogout(t, tb)
}
