{{/* Chart name, truncated to the 63 characters a label value allows. */}}
{{- define "llmobs.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Resource name prefix: <release>-llmobs, or the release name alone when it already says llmobs. */}}
{{- define "llmobs.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "llmobs.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Selector labels: stable across upgrades (a Deployment's selector is immutable). */}}
{{- define "llmobs.selectorLabels" -}}
app.kubernetes.io/name: {{ include "llmobs.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "llmobs.labels" -}}
helm.sh/chart: {{ include "llmobs.chart" . }}
{{ include "llmobs.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: llmobs
{{- end }}

{{- define "llmobs.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "llmobs.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "llmobs.image" -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}
{{- end }}

{{/* In-cluster address KEDA dials for the external scaler. */}}
{{- define "llmobs.scalerAddress" -}}
{{ include "llmobs.fullname" . }}.{{ .Release.Namespace }}.svc.cluster.local:{{ .Values.scaler.port }}
{{- end }}

{{/*
The llmobs.yaml the exporter runs with: `.Values.config` plus the sections the chart owns, so that the
ports in the config always equal the container and Service ports.
*/}}
{{- define "llmobs.config" -}}
{{- $cfg := deepCopy .Values.config }}
{{- $_ := set $cfg "server" (dict "host" "0.0.0.0" "port" (int .Values.exporter.port)) }}
{{- if .Values.scaler.enabled }}
{{- $scaler := dict "enabled" true "host" "0.0.0.0" "port" (int .Values.scaler.port) }}
{{- if .Values.scaler.tls.enabled }}
{{- $tls := dict "cert_file" "/etc/llmobs/tls/tls.crt" "key_file" "/etc/llmobs/tls/tls.key" }}
{{- if .Values.scaler.tls.mutual }}
{{- $_ := set $tls "client_ca_file" "/etc/llmobs/tls/ca.crt" }}
{{- end }}
{{- $_ := set $scaler "tls" $tls }}
{{- end }}
{{- /* Models scaled to zero have no replica to scrape: the scaler must still answer for them (value 0). */}}
{{- $zero := list }}
{{- range .Values.keda.scaledObjects }}
{{- if and (hasKey . "minReplicaCount") (eq (int .minReplicaCount) 0) }}
{{- $zero = append $zero .model }}
{{- end }}
{{- end }}
{{- if $zero }}
{{- $_ := set $scaler "models" ($zero | uniq) }}
{{- end }}
{{- $_ := set $cfg "scaler" $scaler }}
{{- end }}
{{- if .Values.feedback.enabled }}
{{- $fb := dict "enabled" true "host" "0.0.0.0" "port" (int .Values.feedback.port) "db_path" "/var/lib/llmobs/feedback.db" "tokens_file" "/etc/llmobs/feedback-tokens" }}
{{- if .Values.feedback.allowedApps }}
{{- $_ := set $fb "allowed_apps" .Values.feedback.allowedApps }}
{{- end }}
{{- $_ := set $cfg "feedback" $fb }}
{{- end }}
{{- if .Values.otlp.enabled }}
{{- $otlp := dict "enabled" true "endpoint" .Values.otlp.endpoint "protocol" .Values.otlp.protocol "export_interval_seconds" .Values.otlp.exportIntervalSeconds "service_name" .Values.otlp.serviceName }}
{{- with .Values.otlp.resourceAttributes }}
{{- $_ := set $otlp "resource_attributes" . }}
{{- end }}
{{- if .Values.otlp.caSecretName }}
{{- $_ := set $otlp "ca_file" "/etc/llmobs/otlp-ca/ca.crt" }}
{{- end }}
{{- $_ := set $cfg "otlp" $otlp }}
{{- end }}
{{- toYaml $cfg }}
{{- end }}

{{/*
The HPA metric type each scaler signal is meant for (src/llmobs/serving/scaler/catalogue.py; the chart's
tests fail when the two differ): level-like signals per pod (AverageValue), utilization as a Value.
*/}}
{{- define "llmobs.signalMetricTypes" -}}
queue_depth: AverageValue
requests_running: AverageValue
kv_utilization: Value
request_rate: AverageValue
prompt_tokens_rate: AverageValue
generation_tokens_rate: AverageValue
saturation: Value
door_request_rate: AverageValue
door_pending: AverageValue
forecast_request_rate: AverageValue
desired_replicas: AverageValue
{{- end }}

{{/*
The node agent's agent.yaml (src/llmobs/agent/config.py AgentConfig). node_name comes from $NODE_NAME
(downward API); pod discovery is limited to the agent's own node by the agent itself.
*/}}
{{- define "llmobs.agentConfig" -}}
{{- $cfg := dict "host" "0.0.0.0" "port" (int .Values.nodeAgent.port) "interval_seconds" .Values.nodeAgent.intervalSeconds }}
{{- if .Values.nodeAgent.podAttribution }}
{{- $_ := set $cfg "proc_root" "/host/proc" }}
{{- $k8s := dict "enabled" true }}
{{- with .Values.config.kubernetes }}
{{- range $k := list "label_selector" "model_label" "port_annotation" "namespaces" }}
{{- if hasKey $.Values.config.kubernetes $k }}
{{- $_ := set $k8s $k (get $.Values.config.kubernetes $k) }}
{{- end }}
{{- end }}
{{- end }}
{{- $_ := set $cfg "kubernetes" $k8s }}
{{- end }}
{{- toYaml $cfg }}
{{- end }}
