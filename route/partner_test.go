package route

import (
	"strings"
	"testing"
)

// TestPartnerReturnKernel applies the split-uplinks rules (the main
// table's suppress rule inverted on the partner-return mark, and that
// mark's rule to the transit table) in a namespace: the kernel holds them
// as rendered, and a second Set changes nothing (the inverted rule is
// read back as such, not taken for a foreign one).
func TestPartnerReturnKernel(t *testing.T) {
	_, h := testNS(t)
	m := outboundManager(t, h)
	s := DefaultScheme
	st := s.WithPartnerReturn(s.Desired(testLinks()), 1)
	if !strings.Contains(st.String(), "ip -4 rule add pref 31000 not fwmark 0xfd0000/0xff0000 lookup main suppress_prefixlength 0\n") ||
		!strings.Contains(st.String(), "ip -4 rule add pref 31002 fwmark 0xfd0000/0xff0000 lookup 31001\n") {
		t.Fatalf("rendered:\n%s", st)
	}
	if _, err := m.Set(Outbound, st); err != nil {
		t.Fatal(err)
	}
	n, err := m.Set(Outbound, st)
	if err != nil || n != 0 {
		t.Errorf("second Set: %d changes, %v; want none", n, err)
	}
	got, err := m.Current(Outbound)
	if err != nil {
		t.Fatal(err)
	}
	if got.String() != st.String() {
		t.Errorf("kernel holds\n%s\nwant\n%s", got, st)
	}
	// Back to the plain rules: the inverted rule is replaced.
	plain := s.Desired(testLinks())
	if _, err := m.Set(Outbound, plain); err != nil {
		t.Fatal(err)
	}
	if got, _ := m.Current(Outbound); got.String() != plain.String() {
		t.Errorf("kernel holds\n%s\nwant\n%s", got, plain)
	}
}
