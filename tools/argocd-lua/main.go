// Command argocd-lua evaluates an Argo CD resource health check (health.lua) against
// a Kubernetes object the way the Argo CD application controller does, so that the
// health checks in argocd/resource_customizations/ are tested with Argo CD's own Lua
// runtime (gopher-lua, the same version and JSON bridge Argo CD v3.6 requires) rather
// than with a look-alike.
//
// Usage:
//
//	argocd-lua health --script health.lua [--libs builtin|configmap] object.yaml
//
// prints {"status": "...", "message": "..."} on stdout, or exits 1 with the Lua error.
//
// What is reproduced from Argo CD (util/lua in argoproj/argo-cd), not copied:
//   - the object is read as Argo CD's tests read it (YAML -> JSON -> map) and turned
//     into a Lua table: JSON numbers become Lua numbers, arrays 1-based tables, maps
//     string-keyed tables, null becomes nil;
//   - the script runs with a 1 s deadline, the object as the global `obj`, and must
//     return a table; that table is JSON-encoded with layeh.com/gopher-json and read
//     back into {status, message};
//   - a status outside Healthy/Progressing/Degraded/Suspended/Missing/Unknown becomes
//     Unknown with "Lua returned an invalid health status";
//   - libraries: `--libs builtin` is how Argo CD runs the checks shipped inside it
//     (every gopher-lua standard library); `--libs configmap` is how it runs a check
//     given in argocd-cm without `useOpenLibs: true`: only package, base, table and a
//     safe os (os.time). A check that passes in both modes works wherever it is put.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"time"

	lua "github.com/yuin/gopher-lua"
	luajson "layeh.com/gopher-json"
	"sigs.k8s.io/yaml"
)

var validStatus = map[string]bool{
	"Healthy": true, "Progressing": true, "Degraded": true,
	"Suspended": true, "Missing": true, "Unknown": true,
}

type healthStatus struct {
	Status  string `json:"status"`
	Message string `json:"message"`
}

// toLua mirrors Argo CD's conversion of an unstructured object into a Lua value.
func toLua(L *lua.LState, v any) lua.LValue {
	switch x := v.(type) {
	case nil:
		return lua.LNil
	case bool:
		return lua.LBool(x)
	case string:
		return lua.LString(x)
	case json.Number:
		return lua.LString(x)
	case float64:
		return lua.LNumber(x)
	case int64:
		return lua.LNumber(x)
	case int:
		return lua.LNumber(x)
	case []any:
		t := L.CreateTable(len(x), 0)
		for _, item := range x {
			t.Append(toLua(L, item))
		}
		return t
	case map[string]any:
		t := L.CreateTable(0, len(x))
		for k, item := range x {
			t.RawSetH(lua.LString(k), toLua(L, item))
		}
		return t
	}
	return lua.LNil
}

func osTime(L *lua.LState) int {
	L.Push(lua.LNumber(time.Now().Unix()))
	return 1
}

func newState(libs string) (*lua.LState, error) {
	switch libs {
	case "builtin":
		return lua.NewState(), nil
	case "configmap":
		L := lua.NewState(lua.Options{SkipOpenLibs: true})
		for _, lib := range []struct {
			name string
			open lua.LGFunction
		}{
			{lua.LoadLibName, lua.OpenPackage},
			{lua.BaseLibName, lua.OpenBase},
			{lua.TabLibName, lua.OpenTable},
		} {
			if err := L.CallByParam(lua.P{Fn: L.NewFunction(lib.open), NRet: 0, Protect: true},
				lua.LString(lib.name)); err != nil {
				L.Close()
				return nil, err
			}
		}
		L.SetGlobal(lua.OsLibName, L.SetFuncs(L.NewTable(), map[string]lua.LGFunction{"time": osTime}))
		return L, nil
	}
	return nil, fmt.Errorf("--libs must be builtin or configmap, not %q", libs)
}

func health(scriptPath, libs, objectPath string) (*healthStatus, error) {
	script, err := os.ReadFile(scriptPath)
	if err != nil {
		return nil, err
	}
	raw, err := os.ReadFile(objectPath)
	if err != nil {
		return nil, err
	}
	obj := map[string]any{}
	if err := yaml.Unmarshal(raw, &obj); err != nil {
		return nil, fmt.Errorf("%s: %w", objectPath, err)
	}
	L, err := newState(libs)
	if err != nil {
		return nil, err
	}
	defer L.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	L.SetContext(ctx)
	L.SetGlobal("obj", toLua(L, obj))
	if err := L.DoString(string(script)); err != nil {
		return nil, err
	}
	ret := L.Get(-1)
	if ret.Type() != lua.LTTable {
		return nil, fmt.Errorf("expect table output from Lua script, not %s", ret.Type())
	}
	encoded, err := luajson.Encode(ret)
	if err != nil {
		return nil, err
	}
	hs := &healthStatus{}
	if err := json.Unmarshal(encoded, hs); err != nil {
		return nil, err
	}
	if !validStatus[hs.Status] {
		return &healthStatus{Status: "Unknown", Message: "Lua returned an invalid health status"}, nil
	}
	return hs, nil
}

func main() {
	if len(os.Args) < 2 || os.Args[1] != "health" {
		fmt.Fprintln(os.Stderr, "usage: argocd-lua health --script health.lua [--libs builtin|configmap] object.yaml")
		os.Exit(2)
	}
	fs := flag.NewFlagSet("health", flag.ExitOnError)
	script := fs.String("script", "", "path of the health.lua to run")
	libs := fs.String("libs", "builtin", "builtin (Argo CD's shipped checks) or configmap (argocd-cm without useOpenLibs)")
	_ = fs.Parse(os.Args[2:])
	if *script == "" || fs.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "argocd-lua health: need --script and exactly one object file")
		os.Exit(2)
	}
	hs, err := health(*script, *libs, fs.Arg(0))
	if err != nil {
		var apiErr *lua.ApiError
		if errors.As(err, &apiErr) {
			fmt.Fprintln(os.Stderr, "lua error:", apiErr.Object.String())
		} else {
			fmt.Fprintln(os.Stderr, "error:", err)
		}
		os.Exit(1)
	}
	out, _ := json.Marshal(hs)
	fmt.Println(string(out))
}
