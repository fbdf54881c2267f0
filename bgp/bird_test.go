package bgp

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// bird runs BIRD 2 in a namespace; birdc talks to it on its own socket.
type bird struct {
	sock string
}

func birdAvailable(t testing.TB) {
	if _, err := exec.LookPath("bird"); err != nil {
		t.Skip("BIRD is not installed (apt-get install bird2)")
	}
}

func startBIRD(t testing.TB, ns, name, conf string) *bird {
	t.Helper()
	birdAvailable(t)
	dir := filepath.Join(birdRunDir, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	cf, pid := filepath.Join(dir, "bird.conf"), filepath.Join(dir, "bird.pid")
	b := &bird{sock: filepath.Join(dir, "bird.ctl")}
	if err := os.WriteFile(cf, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stopPidFile(pid)
		os.RemoveAll(dir)
	})
	if out, err := exec.Command("ip", "netns", "exec", ns, "bird", "-c", cf, "-s", b.sock, "-P", pid).CombinedOutput(); err != nil {
		t.Fatalf("start bird: %v: %s", err, out)
	}
	return b
}

func (b *bird) birdc(cmd string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	out, _ := exec.CommandContext(ctx, "birdc", "-s", b.sock, cmd).Output()
	return string(out)
}

var (
	birdPath = regexp.MustCompile(`BGP\.as_path: ?(.*)`)
	birdComm = regexp.MustCompile(`BGP\.community: ?(.*)`)
	birdPair = regexp.MustCompile(`\((\d+),(\d+)\)`)
)

func (b *bird) lookup(prefix string) (route, bool) {
	out := b.birdc("show route " + prefix + " all")
	if !strings.Contains(out, prefix) {
		return route{}, false
	}
	var r route
	if m := birdPath.FindStringSubmatch(out); m != nil {
		r.ASPath = strings.TrimSpace(m[1])
	}
	if m := birdComm.FindStringSubmatch(out); m != nil {
		var cs []string
		for _, p := range birdPair.FindAllStringSubmatch(m[1], -1) {
			cs = append(cs, p[1]+":"+p[2])
		}
		r.Communities = strings.Join(cs, " ")
	}
	return r, true
}

func (b *bird) established(string) bool {
	return strings.Contains(b.birdc("show protocols site"), "Established")
}

var _ router = (*bird)(nil)

// birdISP is ISP k's BIRD configuration, peering with the gateway over
// IPv4, accepting everything from it and exporting nothing.
func birdISP(k int, bfd bool) string {
	gw, me := fmt.Sprintf("198.51.100.%d", 2+16*(k-1)), fmt.Sprintf("198.51.100.%d", 1+16*(k-1))
	s := fmt.Sprintf(`router id %s;
protocol device {}
protocol kernel { ipv4 { export none; }; }
`, me)
	bfdOn := ""
	if bfd {
		s += "protocol bfd { interface \"gw0\" { min rx interval 300 ms; min tx interval 300 ms; multiplier 3; }; }\n"
		bfdOn = "bfd on;"
	}
	return s + fmt.Sprintf(`protocol bgp site {
  local %s as %d;
  neighbor %s as 64500;
  hold time 9; connect retry time 1;
  %s
  ipv4 { import all; export none; };
}
`, me, 64500+k, gw, bfdOn)
}
