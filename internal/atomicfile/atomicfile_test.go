package atomicfile

import (
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestWrite(t *testing.T) {
	dir := t.TempDir()
	name := filepath.Join(dir, "state.json")
	if err := Write(name, []byte("one"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := Write(name, []byte("two"), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(name)
	if err != nil || string(got) != "two" {
		t.Fatalf("read %q, %v; want %q", got, err, "two")
	}
	fi, err := os.Stat(name)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries, want only the file (no temporary left)", len(entries))
	}
}

func TestWriteIntoMissingDirectory(t *testing.T) {
	name := filepath.Join(t.TempDir(), "missing", "state.json")
	if err := Write(name, []byte("x"), 0o600); err == nil {
		t.Fatal("a write into a missing directory succeeded")
	}
}

// memFS is an FS in memory that fails the operation named by failOn.
type memFS struct {
	files  map[string][]byte
	synced []string
	failOn string
}

type memFile struct {
	fs   *memFS
	name string
}

var errInjected = errors.New("injected")

func (m *memFS) fail(op string) error {
	if m.failOn == op {
		return errInjected
	}
	return nil
}

func (m *memFS) CreateExcl(name string, perm os.FileMode) (File, error) {
	if _, ok := m.files[name]; ok {
		return nil, os.ErrExist
	}
	if err := m.fail("create"); err != nil {
		return nil, err
	}
	m.files[name] = nil
	return &memFile{m, name}, nil
}

func (f *memFile) Write(p []byte) (int, error) {
	if err := f.fs.fail("write"); err != nil {
		return 0, err
	}
	f.fs.files[f.name] = append(f.fs.files[f.name], p...)
	return len(p), nil
}

func (f *memFile) Sync() error  { return f.fs.fail("sync") }
func (f *memFile) Close() error { return f.fs.fail("close") }

func (m *memFS) Rename(oldname, newname string) error {
	if err := m.fail("rename"); err != nil {
		return err
	}
	m.files[newname] = m.files[oldname]
	delete(m.files, oldname)
	return nil
}

func (m *memFS) Remove(name string) error {
	delete(m.files, name)
	return nil
}

func (m *memFS) SyncDir(dir string) error {
	m.synced = append(m.synced, dir)
	return m.fail("syncdir")
}

func TestWriteFS(t *testing.T) {
	for _, failOn := range []string{"", "create", "write", "sync", "close", "rename", "syncdir"} {
		t.Run("fail "+failOn, func(t *testing.T) {
			m := &memFS{files: map[string][]byte{"d/state": []byte("old")}, failOn: failOn}
			err := WriteFS(m, "d/state", []byte("new"), 0o644)
			if (err != nil) != (failOn != "") {
				t.Fatalf("WriteFS = %v with %q failing", err, failOn)
			}
			want := map[string][]byte{"d/state": []byte("old")}
			if failOn == "" || failOn == "syncdir" {
				want["d/state"] = []byte("new")
			}
			if diff := cmp.Diff(want, m.files); diff != "" {
				t.Errorf("files after WriteFS (-want +got):\n%s", diff)
			}
			if failOn == "" && !slices.Equal(m.synced, []string{"d"}) {
				t.Errorf("synced directories %q, want [d]", m.synced)
			}
		})
	}
}

func TestWriteFSTempName(t *testing.T) {
	m := &memFS{files: map[string][]byte{}, failOn: "rename"}
	if err := WriteFS(m, "d/state", []byte("x"), 0o644); err == nil {
		t.Fatal("WriteFS succeeded with a failing rename")
	}
	m.failOn = "close"
	var created []string
	m2 := &recordingFS{memFS: m, created: &created}
	WriteFS(m2, "d/state", []byte("x"), 0o644)
	WriteFS(m2, "d/state", []byte("x"), 0o644)
	if len(created) != 2 || created[0] == created[1] {
		t.Fatalf("temporary names %q, want two different ones", created)
	}
	for _, n := range created {
		if !regexp.MustCompile(`^d/\.state\.[0-9a-f]{16}\.tmp$`).MatchString(n) {
			t.Errorf("temporary name %q, want d/.state.<16 hex digits>.tmp", n)
		}
	}
}

type recordingFS struct {
	*memFS
	created *[]string
}

func (r *recordingFS) CreateExcl(name string, perm os.FileMode) (File, error) {
	*r.created = append(*r.created, name)
	return r.memFS.CreateExcl(name, perm)
}
