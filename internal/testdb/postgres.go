package testdb

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// postgresBin finds a PostgreSQL server binary on PATH, or in Debian's
// versioned directories, newest first.
func postgresBin(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	slices.SortFunc(dirs, func(a, b string) int {
		va, _ := strconv.Atoi(filepath.Base(filepath.Dir(a)))
		vb, _ := strconv.Atoi(filepath.Base(filepath.Dir(b)))
		return vb - va
	})
	for _, d := range dirs {
		p := filepath.Join(d, name)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found on PATH nor in /usr/lib/postgresql/*/bin (Debian package postgresql)", name)
}

// asPostgresUser builds a command that runs as the postgres OS user when this
// process is root, because initdb and postgres refuse to run as root.
func asPostgresUser(name string, args ...string) (*exec.Cmd, error) {
	if os.Geteuid() != 0 {
		return exec.Command(name, args...), nil
	}
	runuser, err := exec.LookPath("runuser")
	if err != nil {
		return nil, errors.New("running as root, and runuser is missing to run postgres as another user")
	}
	return exec.Command(runuser, append([]string{"-u", "postgres", "--", name}, args...)...), nil
}

// startCluster creates and starts a throwaway cluster in a temporary
// directory and answers its URL. Main stops it; a watcher stops it too
// should this process die without running Main.
func startCluster() (string, error) {
	initdb, err := postgresBin("initdb")
	if err != nil {
		return "", err
	}
	pgCtl, err := postgresBin("pg_ctl")
	if err != nil {
		return "", err
	}
	dir, err := os.MkdirTemp("", "crmkit-pg-")
	if err != nil {
		return "", err
	}
	fail := func(err error) (string, error) {
		_ = os.RemoveAll(dir)
		return "", err
	}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return fail(fmt.Errorf("running as root and there is no postgres OS user to run the server as: %w", err))
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			return fail(err)
		}
	}
	data := filepath.Join(dir, "data")
	cmd, err := asPostgresUser(initdb, "-D", data, "-U", "postgres", "--auth=trust",
		"-E", "UTF8", "--locale=C", "--no-sync")
	if err != nil {
		return fail(err)
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		return fail(fmt.Errorf("initdb: %w: %s", err, bytes.TrimSpace(out)))
	}
	var port int
	for attempt := 0; ; attempt++ {
		port, err = freePort()
		if err != nil {
			return fail(err)
		}
		opts := strings.Join([]string{
			"-c listen_addresses=127.0.0.1", "-p " + strconv.Itoa(port), "-k " + dir,
			"-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off",
			"-c max_connections=300",
		}, " ")
		cmd, err = asPostgresUser(pgCtl, "-D", data, "-l", filepath.Join(dir, "log"), "-o", opts, "-w", "-t", "60", "start")
		if err != nil {
			return fail(err)
		}
		out, err := cmd.CombinedOutput()
		if err == nil {
			break
		}
		// Another process may have taken the port between freePort and
		// the server's bind.
		if attempt == 2 {
			log, _ := os.ReadFile(filepath.Join(dir, "log"))
			return fail(fmt.Errorf("pg_ctl start: %w: %s %s", err, bytes.TrimSpace(out), bytes.TrimSpace(log)))
		}
	}
	stop := func() {
		if cmd, err := asPostgresUser(pgCtl, "-D", data, "-m", "immediate", "-w", "stop"); err == nil {
			_ = cmd.Run()
		}
		_ = os.RemoveAll(dir)
	}
	addCleanup(stop)
	stopCmd := fmt.Sprintf("%q -D %q -m immediate -w stop", pgCtl, data)
	if os.Geteuid() == 0 {
		stopCmd = "runuser -u postgres -- " + stopCmd
	}
	watch(fmt.Sprintf("%s >/dev/null 2>&1; rm -rf %q", stopCmd, dir))
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port), nil
}

// watch starts a shell that runs stopCmd once this process is gone, so a test
// binary killed by a timeout leaves no server behind. When Main ran first,
// stopCmd finds nothing to do.
func watch(stopCmd string) {
	script := fmt.Sprintf("while kill -0 %d 2>/dev/null; do sleep 1; done; %s", os.Getpid(), stopCmd)
	cmd := exec.Command("sh", "-c", script)
	if err := cmd.Start(); err == nil {
		go func() { _ = cmd.Wait() }()
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
