package tokenizer

import (
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/nikolalohinski/gonja/v2/exec"
	"github.com/nikolalohinski/gonja/v2/loaders"
)

// gonjaAudited is the gonja version whose node tree chatGuard was checked
// against (chat_limits.go reaches unexported fields; gonja offers no
// supported render limits).
const gonjaAudited = "v2.9.1"

// TestChatGuardKnowsGonja fails loudly when gonja changes under the guard:
// the version is pinned (re-audit chatGuard, then update gonjaAudited),
// and a template with a known number of each guarded construct must come
// out with each one instrumented.
func TestChatGuardKnowsGonja(t *testing.T) {
	// Test binaries carry no dependency versions: read go.mod.
	mod, err := os.ReadFile("../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	version := ""
	for _, line := range strings.Split(string(mod), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == "require" {
			f = f[1:]
		}
		if len(f) >= 2 && f[0] == "github.com/nikolalohinski/gonja/v2" {
			version = f[1]
		}
		if len(f) >= 4 && f[0] == "replace" && strings.HasPrefix(f[1], "github.com/nikolalohinski/gonja") {
			t.Fatalf("gonja is replaced (%s): audit chatGuard against it", line)
		}
	}
	if version != gonjaAudited {
		t.Fatalf("go.mod requires gonja %q; the chat template guard (chat_limits.go) was audited against %s: check that chatGuard still reaches every loop, operator and set (this test's counts), then update gonjaAudited", version, gonjaAudited)
	}
	src := `{% set ns = namespace(s='') %}{% set d = {} %}` +
		`{% for m in messages %}{% set ns.s = ns.s + m.content %}{% set d['k'] = m.role ~ '!' %}{% endfor %}` +
		`{% macro f(x) %}{{ x * 2 }}{% endmacro %}` +
		`{% for i in range(2) %}{{ f(i) }}{% endfor %}{{ messages[-1].role }}`
	loader, err := loaders.NewMemoryLoader(map[string]string{"/t": src})
	if err != nil {
		t.Fatal(err)
	}
	tpl, err := exec.NewTemplate("/t", chatConfig(), loader, chatEnvironment())
	if err != nil {
		t.Fatal(err)
	}
	g := &chatGuarder{seen: map[uintptr]bool{}}
	g.walk(reflect.ValueOf(tpl.Root()))
	if g.err != nil {
		t.Fatal(g.err)
	}
	// + ~ *; two for loops; ns.s and d['k']; the bodies of the two loops
	// and the macro (and the template's own body).
	// messages[-1] is a subscript; d['k'] is a set target, left alone.
	if g.binops != 3 || g.loops != 2 || g.sets != 2 || g.ticks < 3 || g.items != 1 {
		t.Fatalf("guard instrumented %d operators (want 3), %d loops (2), %d attribute/item sets (2), %d bodies (>= 3), %d subscripts (1)", g.binops, g.loops, g.sets, g.ticks, g.items)
	}
}
