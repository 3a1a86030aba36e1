package testdb

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Environment variables of the Redis helper.
const (
	// EnvRedis is the host:port of a Redis server tests may use (CI starts
	// one). Tests sharing it keep to keys under RedisPrefix.
	EnvRedis        = "CRMKIT_TEST_REDIS"
	EnvRequireRedis = "CRMKIT_TEST_REQUIRE_REDIS"
)

// RedisAddr answers the host:port of a Redis server: EnvRedis when set, else
// a throwaway redis-server started once per test process (on 127.0.0.1, with
// persistence off) and stopped by Main. Without either the test is skipped
// with the reason, or fails when CRMKIT_TEST_REQUIRE_REDIS=1.
func RedisAddr(tb testing.TB) string {
	tb.Helper()
	addr, err := redisServer()
	if err != nil {
		unavailable(tb, EnvRequireRedis, "redis", err)
	}
	return addr
}

// RedisPrefix answers a key prefix of the test's own, so tests sharing one
// server never see each other's keys.
func RedisPrefix(tb testing.TB) string {
	tb.Helper()
	return "crmkit_test_" + randomHex(8) + ":"
}

var rd struct {
	once sync.Once
	addr string
	err  error
}

func redisServer() (string, error) {
	rd.once.Do(func() {
		if addr := os.Getenv(EnvRedis); addr != "" {
			rd.addr = addr
			rd.err = redisPing(addr)
			if rd.err != nil {
				rd.err = fmt.Errorf("%s=%s: %w", EnvRedis, addr, rd.err)
			}
			return
		}
		if !mainRunning.Load() {
			rd.err = fmt.Errorf("%s is unset and this package's TestMain does not call testdb.Main, which would stop a throwaway server", EnvRedis)
			return
		}
		rd.addr, rd.err = startRedis()
	})
	return rd.addr, rd.err
}

// startRedis runs redis-server on a free loopback port, retrying when
// another process takes the port first.
func startRedis() (string, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return "", fmt.Errorf("redis-server not found on PATH (Debian package redis-server)")
	}
	dir, err := os.MkdirTemp("", "crmkit-redis-")
	if err != nil {
		return "", err
	}
	var lastErr error
	for range 3 {
		port, err := freePort()
		if err != nil {
			_ = os.RemoveAll(dir)
			return "", err
		}
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		cmd := exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1",
			"--save", "", "--appendonly", "no", "--dir", dir, "--loglevel", "warning")
		var out strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			_ = os.RemoveAll(dir)
			return "", fmt.Errorf("start redis-server: %w", err)
		}
		exited := make(chan struct{})
		go func() { _ = cmd.Wait(); close(exited) }()
		stop := func() {
			_ = cmd.Process.Kill()
			<-exited
		}
		if err := waitRedis(addr, exited); err != nil {
			stop()
			lastErr = fmt.Errorf("redis-server on %s: %w: %s", addr, err, strings.TrimSpace(out.String()))
			continue
		}
		addCleanup(func() {
			stop()
			_ = os.RemoveAll(dir)
		})
		watch(fmt.Sprintf("kill %d 2>/dev/null; rm -rf %q", cmd.Process.Pid, dir))
		return addr, nil
	}
	_ = os.RemoveAll(dir)
	return "", lastErr
}

// waitRedis waits up to ten seconds for the server to answer PING.
func waitRedis(addr string, exited <-chan struct{}) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := redisPing(addr)
		if err == nil {
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("exited: %w", err)
		default:
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// redisPing speaks just enough RESP to see a server answer.
func redisPing(addr string) error {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := conn.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, "+PONG") {
		return fmt.Errorf("unexpected answer to PING: %q", strings.TrimSpace(line))
	}
	return nil
}
