package server

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/xml"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/loglineos/loglineos/internal/bundle"
	"github.com/loglineos/loglineos/internal/tenant"
	"github.com/loglineos/loglineos/stdlib"
)

// The files in deploy/ are part of the product: they must load.
func TestDeployFiles(t *testing.T) {
	dir := filepath.Join("..", "..", "deploy")
	c := DefaultConfig()
	if err := c.LoadFile(filepath.Join(dir, "logline.yaml")); err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("deploy/logline.yaml: %v", err)
	}

	_, key, _ := ed25519.GenerateKey(rand.Reader)
	data, err := stdlib.Build(key)
	if err != nil {
		t.Fatal(err)
	}
	b, err := bundle.Load(data, bundle.LoadOptions{Trusted: []ed25519.PublicKey{key.Public().(ed25519.PublicKey)}})
	if err != nil {
		t.Fatal(err)
	}
	tf, err := os.ReadFile(filepath.Join(dir, "tenant.example.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	f, err := tenant.Parse("", tf, tenant.BasePolicies(b))
	if err != nil {
		t.Fatalf("deploy/tenant.example.yaml: %v", err)
	}
	if cfg, err := tenant.ParseConfig(f.Doc); err != nil || cfg.Linker.MaxOpen != 200_000 {
		t.Fatalf("tenant example's policies read as %+v, %v", cfg.Linker, err)
	}
	if f.Quotas.IngestPerSecond != 2000 || len(f.Members) != 2 {
		t.Fatalf("tenant example read as %+v", f)
	}

	if _, err := exec.LookPath("promtool"); err != nil {
		t.Log("promtool is not installed: the alert rules are not checked here (.ci/run installs it)")
		return
	}
	out, err := exec.Command("promtool", "check", "rules", filepath.Join(dir, "alerts.yaml")).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool check rules: %v\n%s", err, out)
	}
}

// Every file in deploy/ is checked by a test: a file of a kind none knows
// fails, so that a new unit, agent or script is not shipped unread.
func TestDeployFilesAreAllChecked(t *testing.T) {
	dir := filepath.Join("..", "..", "deploy")
	checked := map[string]bool{ // by TestDeployFiles
		"logline.yaml": true, "tenant.example.yaml": true, "alerts.yaml": true,
	}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		switch {
		case checked[filepath.ToSlash(rel)]:
		case strings.HasSuffix(rel, ".plist"):
			checkPlist(t, rel, b)
		case strings.HasSuffix(rel, ".service"), strings.HasSuffix(rel, ".timer"):
			checkUnit(t, dir, rel, b)
		case filepath.ToSlash(rel) == "backup/logline-backup":
			if out, err := exec.Command("sh", "-n", path).CombinedOutput(); err != nil {
				t.Errorf("%s: sh -n: %v\n%s", rel, err, out)
			}
			if !bytes.HasPrefix(b, []byte("#!/bin/sh\n")) {
				t.Errorf("%s: want a POSIX sh script (#!/bin/sh)", rel)
			}
		default:
			t.Errorf("deploy/%s: no test checks this file; add one to TestDeployFilesAreAllChecked", rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// checkPlist checks a launchd agent: well-formed XML, a plist whose Label is
// its file name, and a program that is logline or the backup script.
func checkPlist(t *testing.T, rel string, b []byte) {
	t.Helper()
	dec := xml.NewDecoder(bytes.NewReader(b))
	var strs []string
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Errorf("deploy/%s: %v", rel, err)
			return
		}
		if cd, ok := tok.(xml.CharData); ok && len(bytes.TrimSpace(cd)) > 0 {
			strs = append(strs, string(bytes.TrimSpace(cd)))
		}
	}
	label := strings.TrimSuffix(filepath.Base(rel), ".plist")
	i := slices.Index(strs, "Label")
	if i < 0 || i+1 >= len(strs) || strs[i+1] != label {
		t.Errorf("deploy/%s: want Label %q", rel, label)
	}
	if !slices.Contains(strs, "/usr/local/bin/logline") && !slices.Contains(strs, "/usr/local/bin/logline-backup") {
		t.Errorf("deploy/%s: runs neither /usr/local/bin/logline nor /usr/local/bin/logline-backup", rel)
	}
	if strings.HasPrefix(label, "dev.logline.backup-") {
		kind := strings.TrimPrefix(label, "dev.logline.backup-")
		if !slices.Contains(strs, kind) || !slices.Contains(strs, "StartCalendarInterval") {
			t.Errorf("deploy/%s: want logline-backup %s on a StartCalendarInterval", rel, kind)
		}
	}
}

// checkUnit checks a systemd unit: sections and key=value lines; a timer
// names a calendar (checked by systemd-analyze where it is installed) and
// has its service beside it; a backup service runs the backup script with
// its kind.
func checkUnit(t *testing.T, dir, rel string, b []byte) {
	t.Helper()
	keys := map[string]string{} // "Section.Key" -> value
	section := ""
	for n, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "", strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = line[1 : len(line)-1]
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" {
				t.Errorf("deploy/%s:%d: not a key=value line of a section: %q", rel, n+1, line)
				continue
			}
			keys[section+"."+k] = v
		}
	}
	name := filepath.Base(rel)
	if base, ok := strings.CutSuffix(name, ".timer"); ok {
		if keys["Timer.OnCalendar"] == "" || keys["Install.WantedBy"] != "timers.target" {
			t.Errorf("deploy/%s: want Timer.OnCalendar and WantedBy=timers.target, got %v", rel, keys)
		}
		if _, err := os.Stat(filepath.Join(dir, filepath.Dir(rel), base+".service")); err != nil {
			t.Errorf("deploy/%s: no %s.service beside it", rel, base)
		}
		if _, err := exec.LookPath("systemd-analyze"); err == nil {
			if out, err := exec.Command("systemd-analyze", "calendar", keys["Timer.OnCalendar"]).CombinedOutput(); err != nil {
				t.Errorf("deploy/%s: systemd-analyze calendar: %v\n%s", rel, err, out)
			}
		}
		return
	}
	if keys["Service.ExecStart"] == "" {
		t.Errorf("deploy/%s: no ExecStart", rel)
	}
	if kind, ok := strings.CutPrefix(strings.TrimSuffix(name, ".service"), "logline-backup-"); ok {
		if want := "/bin/sh /usr/local/bin/logline-backup " + kind; keys["Service.ExecStart"] != want || keys["Service.Type"] != "oneshot" {
			t.Errorf("deploy/%s: ExecStart %q Type %q, want %q oneshot", rel, keys["Service.ExecStart"], keys["Service.Type"], want)
		}
	}
}
