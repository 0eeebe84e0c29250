{{/* Names and labels, as `helm create` spells them. */}}
{{- define "auditstream.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "auditstream.fullname" -}}
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

{{- define "auditstream.selectorLabels" -}}
app.kubernetes.io/name: {{ include "auditstream.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "auditstream.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "auditstream.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "auditstream.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "auditstream.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "auditstream.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* Paths inside the container. */}}
{{- define "auditstream.configPath" -}}/etc/auditstream/config/auditstream.toml{{- end }}
{{- define "auditstream.tlsDir" -}}/etc/auditstream/tls{{- end }}
{{- define "auditstream.rulesDir" -}}/etc/auditstream/rules{{- end }}

{{/*
Rules the values schema cannot state (JSON Schema compares no two values): fail the render with
a message naming the values at fault.
*/}}
{{- define "auditstream.checks" -}}
{{- $partitions := int .Values.partitions }}
{{- if and (not .Values.keda.enabled) (gt (int .Values.replicaCount) $partitions) }}
{{- fail (printf "replicaCount (%d) exceeds partitions (%d): a replica without a partition is never ready and does no work" (int .Values.replicaCount) $partitions) }}
{{- end }}
{{- if .Values.keda.enabled }}
{{- if gt (int .Values.keda.maxReplicaCount) $partitions }}
{{- fail (printf "keda.maxReplicaCount (%d) exceeds partitions (%d): a replica without a partition is never ready and does no work" (int .Values.keda.maxReplicaCount) $partitions) }}
{{- end }}
{{- if gt (int .Values.keda.minReplicaCount) (int .Values.keda.maxReplicaCount) }}
{{- fail (printf "keda.minReplicaCount (%d) exceeds keda.maxReplicaCount (%d)" (int .Values.keda.minReplicaCount) (int .Values.keda.maxReplicaCount)) }}
{{- end }}
{{- end }}
{{- if le (float64 .Values.terminationGracePeriodSeconds) (float64 .Values.config.shutdown_timeout) }}
{{- fail (printf "terminationGracePeriodSeconds (%v) must exceed config.shutdown_timeout (%v): the kubelet would kill the replica before it commits and leaves the group" .Values.terminationGracePeriodSeconds .Values.config.shutdown_timeout) }}
{{- end }}
{{- if and (eq .Values.config.alert_format "avro") (not .Values.config.registry_url) }}
{{- fail "config.alert_format avro needs config.registry_url" }}
{{- end }}
{{- if eq (empty .Values.config.input_topics) (empty .Values.config.input_pattern) }}
{{- fail "give exactly one of config.input_topics and config.input_pattern" }}
{{- end }}
{{- end }}

{{/*
One TOML value. Helm reads every number in values as a float: whole numbers are written as
integers, so that integer settings and librdkafka's integer properties get integers. Strings use
JSON escapes, which are valid in TOML basic strings.
*/}}
{{- define "auditstream.tomlValue" -}}
{{- if kindIs "bool" . }}{{ . }}
{{- else if or (kindIs "float64" .) (kindIs "int" .) (kindIs "int64" .) }}
{{- if eq (float64 .) (float64 (int64 .)) }}{{ int64 . }}{{ else }}{{ . }}{{ end }}
{{- else if kindIs "slice" . }}[{{ range $i, $item := . }}{{ if $i }}, {{ end }}{{ include "auditstream.tomlValue" $item }}{{ end }}]
{{- else if kindIs "map" . }}{ {{- range $i, $key := keys . | sortAlpha }}{{ if $i }},{{ end }} {{ include "auditstream.tomlKey" $key }} = {{ include "auditstream.tomlValue" (get $ $key) }}{{ end }} }
{{- else }}{{ toJson (toString .) }}
{{- end }}
{{- end }}

{{/* A TOML key: bare when it can be, quoted (librdkafka's dotted names) otherwise. */}}
{{- define "auditstream.tomlKey" -}}
{{- if regexMatch "^[A-Za-z0-9_-]+$" . }}{{ . }}{{ else }}{{ toJson . }}{{ end }}
{{- end }}

{{/*
The settings the chart adds to config: the mounted rules folder, and librdkafka's TLS file
locations in the mounted Secret (they win over the same keys in config.kafka). The Schema
Registry often has another CA: config.registry may name the same files, the chart does not.
*/}}
{{- define "auditstream.settings" -}}
{{- $config := deepCopy .Values.config }}
{{- if .Values.extraRulesConfigMap }}
{{- $_ := set $config "rules" (append (default (list) $config.rules) (include "auditstream.rulesDir" .)) }}
{{- end }}
{{- with .Values.secrets.tls }}
{{- if .existingSecret }}
{{- $dir := include "auditstream.tlsDir" $ }}
{{- $files := dict "ssl.ca.location" (printf "%s/%s" $dir .caKey) }}
{{- if .certKey }}{{ $_ := set $files "ssl.certificate.location" (printf "%s/%s" $dir .certKey) }}{{ end }}
{{- if .keyKey }}{{ $_ := set $files "ssl.key.location" (printf "%s/%s" $dir .keyKey) }}{{ end }}
{{- $_ := set $config "kafka" (merge $files (default (dict) $config.kafka)) }}
{{- end }}
{{- end }}
{{- toJson $config }}
{{- end }}

{{/* auditstream.toml: scalar settings first, then the client property tables. */}}
{{- define "auditstream.toml" -}}
{{- $config := include "auditstream.settings" . | fromJson }}
{{- $tables := list "kafka" "consumer" "producer" "registry" -}}
# Rendered by the auditstream Helm chart from .Values.config; see README.md "Running the service".
{{- range $key := keys $config | sortAlpha }}
{{- $value := get $config $key }}
{{- if and (not (has $key $tables)) (not (kindIs "invalid" $value)) (ne (toString $value) "") }}
{{ include "auditstream.tomlKey" $key }} = {{ include "auditstream.tomlValue" $value }}
{{- end }}
{{- end }}
{{- range $table := $tables }}
{{- $props := get $config $table }}
{{- if $props }}

[{{ $table }}]
{{- range $key := keys $props | sortAlpha }}
{{ include "auditstream.tomlKey" $key }} = {{ include "auditstream.tomlValue" (get $props $key) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/* The TriggerAuthentication the ScaledObject uses: given, made by the chart, or none. */}}
{{- define "auditstream.kedaAuthName" -}}
{{- if .Values.keda.authenticationRef }}
{{- .Values.keda.authenticationRef }}
{{- else if or .Values.secrets.sasl.existingSecret .Values.secrets.tls.existingSecret }}
{{- printf "%s-keda" (include "auditstream.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{/*
KEDA's Kafka scaler spells the service's librdkafka settings its own way; unless keda.sasl and
keda.tls are given, they follow config.kafka's sasl.mechanism and security.protocol.
*/}}
{{- define "auditstream.kedaSasl" -}}
{{- if .Values.keda.sasl }}{{ .Values.keda.sasl }}
{{- else }}
{{- $kafka := default (dict) .Values.config.kafka }}
{{- $protocol := upper (toString (get $kafka "security.protocol")) }}
{{- $mechanism := upper (toString (default "GSSAPI" (get $kafka "sasl.mechanism"))) }}
{{- if not (hasPrefix "SASL_" $protocol) }}none
{{- else }}{{ get (dict "PLAIN" "plaintext" "SCRAM-SHA-256" "scram_sha256" "SCRAM-SHA-512" "scram_sha512" "OAUTHBEARER" "oauthbearer" "GSSAPI" "gssapi") $mechanism | required (printf "keda.sasl: no KEDA equivalent of sasl.mechanism %s; set keda.sasl" $mechanism) }}
{{- end }}
{{- end }}
{{- end }}

{{- define "auditstream.kedaTls" -}}
{{- if .Values.keda.tls }}{{ .Values.keda.tls }}
{{- else }}
{{- $protocol := upper (toString (get (default (dict) .Values.config.kafka) "security.protocol")) }}
{{- if has $protocol (list "SSL" "SASL_SSL") }}enable{{ else }}disable{{ end }}
{{- end }}
{{- end }}

{{/* auto.offset.reset as the service's consumer has it (earliest unless set), in KEDA's words. */}}
{{- define "auditstream.offsetReset" -}}
{{- $kafka := default (dict) .Values.config.kafka }}
{{- $consumer := default (dict) .Values.config.consumer }}
{{- $reset := lower (toString (get $consumer "auto.offset.reset" | default (get $kafka "auto.offset.reset") | default "earliest")) }}
{{- if has $reset (list "latest" "largest" "end") }}latest{{ else }}earliest{{ end }}
{{- end }}
