// Argo CD's Lua health-check runtime as a tiny CLI for the test suite; the three
// requirements are pinned to exactly what Argo CD v3.6.1's go.mod requires.
module agentcred.local/tools/argocd-lua

go 1.26.0

require (
	github.com/yuin/gopher-lua v1.1.2
	layeh.com/gopher-json v0.0.0-20190114024228-97fed8db8427
	sigs.k8s.io/yaml v1.6.0
)

require go.yaml.in/yaml/v2 v2.4.2 // indirect
