{{- define "fluxaudit.labels" -}}
app.kubernetes.io/name: fluxaudit
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/part-of: fluxaudit
{{- end }}

{{- define "fluxaudit.operatorLabels" -}}
{{ include "fluxaudit.labels" . }}
app.kubernetes.io/component: operator
{{- end }}

{{- define "fluxaudit.operatorImage" -}}
{{ .Values.operator.image.repository }}:{{ .Values.operator.image.tag | default .Chart.AppVersion }}{{ with .Values.operator.image.digest }}@{{ . }}{{ end }}
{{- end }}

{{/* Namespaces that get the runner's ServiceAccount. */}}
{{- define "fluxaudit.runnerNamespaces" -}}
{{- $ns := .Values.runner.serviceAccount.namespaces | default .Values.watchNamespaces -}}
{{- toJson $ns -}}
{{- end }}

{{/* What every FluxAudit gets unless it says otherwise (FLUXAUDIT_SPEC_DEFAULTS). */}}
{{- define "fluxaudit.specDefaults" -}}
{{- $runnerImage := printf "%s:%s" .Values.runner.image.repository (.Values.runner.image.tag | default .Chart.AppVersion) -}}
{{- with .Values.runner.image.digest }}{{- $runnerImage = printf "%s@%s" $runnerImage . -}}{{- end -}}
{{- $runner := dict "image" $runnerImage "nodeSelector" .Values.runner.nodeSelector "tolerations" .Values.runner.tolerations "resources" .Values.runner.resources -}}
{{- with .Values.runner.queueName }}{{- $_ := set $runner "queueName" . -}}{{- end -}}
{{- with .Values.runner.priorityClassName }}{{- $_ := set $runner "priorityClassName" . -}}{{- end -}}
{{- $defaults := dict "runner" $runner -}}
{{- if .Values.storage.bucket -}}
{{- $_ := set $defaults "storage" (dict "bucket" .Values.storage.bucket) -}}
{{- end -}}
{{- toJson $defaults -}}
{{- end }}

{{- define "fluxaudit.operatorRules" -}}
# Watch audits; kopf records its progress and finalizer in their metadata.
- apiGroups: ["fluxaudit.dev"]
  resources: ["fluxaudits"]
  verbs: ["get", "list", "watch", "patch"]
- apiGroups: ["fluxaudit.dev"]
  resources: ["fluxaudits/status"]
  verbs: ["patch"]
# One Job per quant: created, watched, listed (also to adopt one after a name conflict).
- apiGroups: ["batch"]
  resources: ["jobs"]
  verbs: ["list", "watch", "create"]
# Events on each audit: jobs created, groups ended, report ready.
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create"]
# Why a group waits: its pod's scheduling, image pull and container states.
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["list"]
{{- if .Values.kueue.enabled }}
# Why a queued Job waits: its Kueue Workload's quota condition.
- apiGroups: ["kueue.x-k8s.io"]
  resources: ["workloads"]
  verbs: ["list"]
{{- end }}
{{- end }}
