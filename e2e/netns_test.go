package e2e

// The whole test binary runs in its own network and mount namespaces: there, loopback
// is private, the fakes can listen on port 443, and /etc/hosts is replaced by a file that
// sends Discord's host names to 127.0.0.1. Navidrome, started from inside, resolves and
// dials Discord exactly as in production; nothing in the product knows about the test.

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"unsafe"
)

const inNamespaceEnv = "NDP_E2E_IN_NAMESPACE"

// fakedHosts are the names the plugin may dial and the fakes answer: the gateway, the
// resume host the fake gateway hands out in READY, Discord's REST API, the Cover Art Archive.
var fakedHosts = []string{"gateway.discord.gg", resumeHost, "discord.com", "coverartarchive.org"}

const resumeHost = "gateway-us-east1-b.discord.gg"

func TestMain(m *testing.M) {
	if os.Getenv(inNamespaceEnv) == "" {
		os.Exit(reexecInNamespace())
	}
	dir, err := setUpNamespace()
	if err != nil {
		fmt.Fprintln(os.Stderr, "FAIL: setting up the test namespace:", err)
		os.Exit(1)
	}
	code := m.Run()
	_ = syscall.Unmount("/etc/hosts", 0)
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// reexecInNamespace runs this binary again in new network and mount namespaces (and a
// user namespace when not root) and returns its exit code. If the machine forbids
// namespaces the test fails and says so: it never runs against the host's network.
func reexecInNamespace() int {
	cmd := exec.Command("/proc/self/exe", os.Args[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	hostNet, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		fmt.Fprintln(os.Stderr, "FAIL: cannot read this process's network namespace:", err)
		return 1
	}
	cmd.Env = append(os.Environ(), inNamespaceEnv+"="+hostNet)
	attr := &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET | syscall.CLONE_NEWNS, Pdeathsig: syscall.SIGKILL}
	if uid, gid := os.Geteuid(), os.Getegid(); uid != 0 {
		attr.Cloneflags |= syscall.CLONE_NEWUSER
		attr.UidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: uid, Size: 1}}
		attr.GidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: gid, Size: 1}}
	}
	cmd.SysProcAttr = attr
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: this machine does not allow new network+mount namespaces (%v); "+
			"the end-to-end test needs them to run Navidrome against local fakes of Discord "+
			"(as root, or with unprivileged user namespaces enabled)\n", err)
		return 1
	}
	if err := cmd.Wait(); err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode()
		}
		fmt.Fprintln(os.Stderr, "FAIL:", err)
		return 1
	}
	return 0
}

// setUpNamespace returns the folder holding the replacement /etc/hosts.
func setUpNamespace() (string, error) {
	self, err := os.Readlink("/proc/self/ns/net")
	if host := os.Getenv(inNamespaceEnv); err != nil || self == host {
		return "", fmt.Errorf("not in a network namespace of its own (%q, the host's is %q)", self, host)
	}
	if err := loopbackUp(); err != nil {
		return "", fmt.Errorf("bringing up lo: %w", err)
	}
	// Private propagation, so the bind mount below never reaches the host.
	if err := syscall.Mount("", "/", "", syscall.MS_REC|syscall.MS_PRIVATE, ""); err != nil {
		return "", fmt.Errorf("making mounts private: %w", err)
	}
	dir, err := os.MkdirTemp("", "ndp-e2e-etc-")
	if err != nil {
		return "", err
	}
	hosts := filepath.Join(dir, "hosts")
	text := "127.0.0.1 localhost\n::1 localhost\n127.0.0.1 " + strings.Join(fakedHosts, " ") + "\n"
	if err := os.WriteFile(hosts, []byte(text), 0o644); err != nil {
		return "", err
	}
	if err := syscall.Mount(hosts, "/etc/hosts", "", syscall.MS_BIND, ""); err != nil {
		return "", fmt.Errorf("bind-mounting /etc/hosts: %w", err)
	}
	return dir, nil
}

// loopbackUp sets IFF_UP on lo (a new network namespace starts with it down).
func loopbackUp() error {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_DGRAM, 0)
	if err != nil {
		return err
	}
	defer syscall.Close(fd)
	var ifr struct {
		name  [16]byte
		flags uint16
		_     [22]byte
	}
	copy(ifr.name[:], "lo")
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, uintptr(fd), syscall.SIOCGIFFLAGS, uintptr(unsafe.Pointer(&ifr))); e != 0 {
		return e
	}
	ifr.flags |= syscall.IFF_UP | syscall.IFF_RUNNING
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, uintptr(fd), syscall.SIOCSIFFLAGS, uintptr(unsafe.Pointer(&ifr))); e != 0 {
		return e
	}
	return nil
}
