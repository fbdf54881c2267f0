package dns

import (
	"net"
	"os/exec"
	"regexp"
	"strings"
	"testing"
)

// TestKdig checks the server against Knot's kdig, an independent client.
// (kdig lower-cases the names it sends, so case is checked with miekg in
// TestProtocol.)
func TestKdig(t *testing.T) {
	kdig, err := exec.LookPath("kdig")
	if err != nil {
		t.Skip("kdig not installed (apt-get install knot-dnsutils)")
	}
	ts := startServer(t, parseConfig(t, protoConfig(t)), newFakeSource("isp1", "isp2"), nil)
	host, port, _ := net.SplitHostPort(ts.addr)
	run := func(args ...string) string {
		t.Helper()
		argv := append([]string{"@" + host, "-p", port, "+norec", "+time=2", "+retry=0"}, args...)
		out, _ := exec.Command(kdig, argv...).CombinedOutput()
		return string(out)
	}
	for _, c := range []struct {
		name string
		args []string
		want []string // regexps that must match
		not  []string // regexps that must not
	}{
		{"A", []string{"www.example.com", "A"},
			[]string{`status: NOERROR`, `Flags: qr aa;`, `ANSWER: 2;`, `www\.example\.com\.\s+30\s+IN\s+A\s+198\.51\.100\.2`},
			[]string{` ra`}},
		{"NXDOMAIN", []string{"nope.example.com", "A"},
			[]string{`status: NXDOMAIN`, `AUTHORITY: 1;`, `example\.com\.\s+30\s+IN\s+SOA`}, nil},
		{"NODATA", []string{"www.example.com", "MX"},
			[]string{`status: NOERROR`, `ANSWER: 0;`, `AUTHORITY: 1;`, `IN\s+SOA`}, nil},
		{"REFUSED", []string{"example.org", "A"}, []string{`status: REFUSED`}, []string{`Flags: qr aa`}},
		{"ANY over UDP", []string{"www.example.com", "ANY"}, []string{`HINFO\s+"RFC8482"`, `ANSWER: 1;`}, nil},
		{"ANY over TCP", []string{"+tcp", "www.example.com", "ANY"}, []string{`ANSWER: 4;`}, nil},
		{"EDNS", []string{"+bufsize=4096", "www.example.com", "A"}, []string{`Version: 0; flags: ; UDP size: 1232 B`}, nil},
		{"ECS scope 0", []string{"+subnet=192.0.2.0/24", "www.example.com", "A"}, []string{`CLIENT-SUBNET: 192\.0\.2\.0/24/0`}, nil},
		{"truncated without TCP fallback", []string{"+ignore", "big.example.com", "TXT"}, []string{`Flags: qr aa tc;`}, nil},
		{"TCP fallback on truncation", []string{"big.example.com", "TXT"}, []string{`ANSWER: 1;`, `\(TCP\)`}, []string{` tc;`}},
		{"AXFR from an allowed secondary", []string{"-b", "127.0.0.2", "example.com", "AXFR"},
			[]string{`www\.example\.com\.\s+30\s+IN\s+A\s+198\.51\.100\.18`, `(?s)IN\s+SOA.*IN\s+SOA`}, nil},
		{"AXFR from a stranger", []string{"-b", "127.0.0.1", "example.com", "AXFR"}, []string{`REFUSED`}, []string{`IN\s+A\s+198`}},
	} {
		t.Run(c.name, func(t *testing.T) {
			out := run(c.args...)
			for _, re := range c.want {
				if !regexp.MustCompile(re).MatchString(out) {
					t.Errorf("kdig %s: no match for %s in:\n%s", strings.Join(c.args, " "), re, out)
				}
			}
			for _, re := range c.not {
				if regexp.MustCompile(re).MatchString(out) {
					t.Errorf("kdig %s: unexpected %s in:\n%s", strings.Join(c.args, " "), re, out)
				}
			}
		})
	}
}
