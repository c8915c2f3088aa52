{{/* Names: a release named "agentcred" gets exactly the kustomize base's names. */}}
{{- define "agentcred.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "agentcred.operatorName" -}}
{{- printf "%s-operator" (include "agentcred.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "agentcred.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "agentcred.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The kustomize base's two labels select; the chart adds the release instance. */}}
{{- define "agentcred.selectorLabels" -}}
app.kubernetes.io/name: agentcred
app.kubernetes.io/component: operator
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "agentcred.labels" -}}
app.kubernetes.io/name: agentcred
app.kubernetes.io/component: operator
{{ include "agentcred.releaseLabels" . }}
{{- end -}}

{{/* What Helm conventionally adds; everything else comes from the kustomize base. */}}
{{- define "agentcred.releaseLabels" -}}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{/*
One document of a kustomize file, parsed: (list $ "base/rbac.yaml" "ClusterRole").
The chart reads RBAC rules and policies from manifests/ (files/manifests is a symlink)
instead of repeating them, so the two cannot drift.
*/}}
{{- define "agentcred.baseDoc" -}}
{{- $root := index . 0 -}}
{{- $path := printf "files/manifests/%s" (index . 1) -}}
{{- $kind := index . 2 -}}
{{- $text := $root.Files.Get $path -}}
{{- if not $text -}}{{- fail (printf "%s is missing from the chart" $path) -}}{{- end -}}
{{- range splitList "\n---\n" $text -}}
{{- $doc := fromYaml . -}}
{{- if eq (get $doc "kind" | toString) $kind -}}{{- toYaml $doc -}}{{- end -}}
{{- end -}}
{{- end -}}

{{- define "agentcred.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
