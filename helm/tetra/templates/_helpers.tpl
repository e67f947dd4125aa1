{{- define "tetra.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "tetra.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "tetra.selectorLabels" -}}
app.kubernetes.io/name: {{ include "tetra.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "tetra.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "tetra.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* Whether an auth file is mounted: "true" or "" */}}
{{- define "tetra.authEnabled" -}}
{{- if or .Values.auth.existingSecret .Values.auth.file -}}true{{- end -}}
{{- end -}}

{{- define "tetra.authSecretName" -}}
{{- if .Values.auth.existingSecret -}}{{ .Values.auth.existingSecret }}{{- else -}}{{ include "tetra.fullname" . }}-auth{{- end -}}
{{- end -}}

{{/* The broker refuses 0.0.0.0 without an auth file unless allowAnonymous: refuse to render that pod */}}
{{- define "tetra.checkAuth" -}}
{{- if and (not (include "tetra.authEnabled" .)) (not .Values.config.allowAnonymous) -}}
{{- fail "tetra: set auth.existingSecret (a Secret holding the auth file) or auth.file (the auth file itself), or config.allowAnonymous=true to let anyone who reaches the broker do everything: the broker refuses to listen on the pod's network without one of them" -}}
{{- end -}}
{{- if and .Values.tls.clientCa (not .Values.tls.existingSecret) -}}
{{- fail "tetra: tls.clientCa needs tls.existingSecret (the Secret's ca.crt verifies the clients' certificates)" -}}
{{- end -}}
{{- if and .Values.tls.existingSecret (or (ne (dir .Values.config.tlsKey) (dir .Values.config.tlsCert)) (ne (dir .Values.config.tlsCa) (dir .Values.config.tlsCert))) -}}
{{- fail "tetra: config.tlsCert, config.tlsKey and config.tlsCa must be in one directory (the TLS Secret is mounted there)" -}}
{{- end -}}
{{- end -}}

{{/* An env value: a list joined with commas, a number without an exponent, anything else as text */}}
{{- define "tetra.envValue" -}}
{{- if kindIs "slice" . -}}
{{- join "," . | quote -}}
{{- else if kindIs "float64" . -}}
{{- int64 . | toString | quote -}}
{{- else -}}
{{- toString . | quote -}}
{{- end -}}
{{- end -}}

{{/* HTTP or HTTPS: the HTTP port speaks HTTPS only when TLS is on */}}
{{- define "tetra.httpScheme" -}}
{{- if .Values.tls.existingSecret -}}HTTPS{{- else -}}HTTP{{- end -}}
{{- end -}}
