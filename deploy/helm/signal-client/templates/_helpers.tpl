{{/* Names, labels and the pod template shared by ingester and worker. */}}

{{- define "signal-client.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "signal-client.fullname" -}}
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

{{/* Component resource name: fullname-component, within 63 characters. */}}
{{- define "signal-client.componentName" -}}
{{- printf "%s-%s" (include "signal-client.fullname" .root | trunc (int (sub 62 (len .component))) | trimSuffix "-") .component -}}
{{- end -}}

{{- define "signal-client.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "signal-client.labels" -}}
helm.sh/chart: {{ include "signal-client.chart" . }}
{{ include "signal-client.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: signal-client
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "signal-client.selectorLabels" -}}
app.kubernetes.io/name: {{ include "signal-client.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* Labels of a component: dict "root" $ "component" "worker". */}}
{{- define "signal-client.componentLabels" -}}
{{ include "signal-client.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "signal-client.componentSelectorLabels" -}}
{{ include "signal-client.selectorLabels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "signal-client.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "signal-client.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "signal-client.secretName" -}}
{{- default (include "signal-client.fullname" .) .Values.existingSecret -}}
{{- end -}}

{{- define "signal-client.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/*
Secret files: a list of "ENV_NAME=key" for every credential the pods get,
from existingSecret (its key names) or from the chart's own Secret (only the
values that are set).
*/}}
{{- define "signal-client.secretItems" -}}
{{- $items := list -}}
{{- if .Values.existingSecret -}}
{{- with .Values.existingSecretKeys.redisPassword }}{{ $items = append $items (printf "REDIS_PASSWORD_FILE=%s" .) }}{{ end -}}
{{- with .Values.existingSecretKeys.signalApiToken }}{{ $items = append $items (printf "SIGNAL_API_TOKEN_FILE=%s" .) }}{{ end -}}
{{- with .Values.existingSecretKeys.logRedactionKey }}{{ $items = append $items (printf "LOG_REDACTION_KEY_FILE=%s" .) }}{{ end -}}
{{- else -}}
{{- if .Values.redis.password }}{{ $items = append $items "REDIS_PASSWORD_FILE=redis-password" }}{{ end -}}
{{- if .Values.signal.apiToken }}{{ $items = append $items "SIGNAL_API_TOKEN_FILE=signal-api-token" }}{{ end -}}
{{- if .Values.logRedactionKey }}{{ $items = append $items "LOG_REDACTION_KEY_FILE=log-redaction-key" }}{{ end -}}
{{- end -}}
{{- join "\n" $items -}}
{{- end -}}

{{/* Checks that no schema can express (they compare two values). */}}
{{- define "signal-client.validate" -}}
{{- $v := .Values -}}
{{- if and $v.worker.keda.enabled $v.worker.autoscaling.enabled -}}
{{- fail "worker.keda.enabled and worker.autoscaling.enabled are both true: choose one (KEDA creates and owns its own HPA)" -}}
{{- end -}}
{{- $shards := int $v.shardCount -}}
{{- if and $v.worker.keda.enabled (gt (int $v.worker.keda.maxReplicaCount) $shards) -}}
{{- fail (printf "worker.keda.maxReplicaCount (%d) exceeds shardCount (%d): a worker beyond the shard count owns no shard and never becomes ready" (int $v.worker.keda.maxReplicaCount) $shards) -}}
{{- end -}}
{{- if and $v.worker.keda.enabled (gt (int $v.worker.keda.minReplicaCount) (int $v.worker.keda.maxReplicaCount)) -}}
{{- fail "worker.keda.minReplicaCount exceeds worker.keda.maxReplicaCount" -}}
{{- end -}}
{{- if and $v.worker.keda.enabled (not $v.worker.keda.prometheus.serverAddress) -}}
{{- fail "worker.keda.prometheus.serverAddress is empty: KEDA needs the URL of the Prometheus that scrapes the workers" -}}
{{- end -}}
{{- if and $v.worker.autoscaling.enabled (gt (int $v.worker.autoscaling.maxReplicas) $shards) -}}
{{- fail (printf "worker.autoscaling.maxReplicas (%d) exceeds shardCount (%d): a worker beyond the shard count owns no shard and never becomes ready" (int $v.worker.autoscaling.maxReplicas) $shards) -}}
{{- end -}}
{{- if and $v.worker.autoscaling.enabled (gt (int $v.worker.autoscaling.minReplicas) (int $v.worker.autoscaling.maxReplicas)) -}}
{{- fail "worker.autoscaling.minReplicas exceeds worker.autoscaling.maxReplicas" -}}
{{- end -}}
{{- if and (not (or $v.worker.keda.enabled $v.worker.autoscaling.enabled)) (gt (int $v.worker.replicaCount) $shards) -}}
{{- fail (printf "worker.replicaCount (%d) exceeds shardCount (%d): a worker beyond the shard count owns no shard and never becomes ready" (int $v.worker.replicaCount) $shards) -}}
{{- end -}}
{{- range $c := list "ingester" "worker" -}}
{{- $grace := int (index $v $c).terminationGracePeriodSeconds -}}
{{- if lt $grace (add (int $v.shutdownTimeoutSeconds) 5 | int) -}}
{{- fail (printf "%s.terminationGracePeriodSeconds (%d) must exceed shutdownTimeoutSeconds (%d) by at least 5 s, or Kubernetes kills the pod before it has drained" $c $grace (int $v.shutdownTimeoutSeconds)) -}}
{{- end -}}
{{- end -}}
{{- if eq (int $v.ports.health) (int $v.ports.metrics) -}}
{{- fail (printf "ports.health and ports.metrics are both %d: they must differ" (int $v.ports.health)) -}}
{{- end -}}
{{- if not $v.signal.phoneNumber -}}
{{- fail "signal.phoneNumber is required: the bot's E.164 number, e.g. +15551234567" -}}
{{- end -}}
{{- if not $v.signal.apiUrl -}}
{{- fail "signal.apiUrl is required: the base URL of signal-cli-rest-api, e.g. http://signal-cli-rest-api:8080" -}}
{{- end -}}
{{- if not $v.redis.url -}}
{{- fail "redis.url is required, e.g. redis://redis-master:6379/0" -}}
{{- end -}}
{{- if and $v.redis.tls.enabled (not (hasPrefix "rediss://" $v.redis.url)) -}}
{{- fail "redis.tls.enabled needs a rediss:// redis.url" -}}
{{- end -}}
{{- if and (or $v.redis.tls.certKey $v.redis.tls.keyKey) (not (and $v.redis.tls.certKey $v.redis.tls.keyKey)) -}}
{{- fail "redis.tls.certKey and redis.tls.keyKey go together (mutual TLS needs both)" -}}
{{- end -}}
{{- if and $v.redis.tls.enabled (or $v.redis.tls.caKey $v.redis.tls.certKey) (not $v.redis.tls.existingSecret) -}}
{{- fail "redis.tls.existingSecret is empty: name the Secret holding the CA (redis.tls.caKey) and client certificate, or set redis.tls.caKey to \"\" to use the system roots" -}}
{{- end -}}
{{- end -}}

{{/* The container's volume mounts and volumes for secrets and TLS files. */}}
{{- define "signal-client.secretVolumeMounts" -}}
{{- if include "signal-client.secretItems" . }}
- name: secrets
  mountPath: /etc/signal-client/secrets
  readOnly: true
{{- end }}
{{- if and .Values.redis.tls.enabled .Values.redis.tls.existingSecret }}
- name: redis-tls
  mountPath: /etc/signal-client/redis-tls
  readOnly: true
{{- end }}
{{- end -}}

{{- define "signal-client.secretVolumes" -}}
{{- $items := include "signal-client.secretItems" . -}}
{{- if $items }}
- name: secrets
  secret:
    secretName: {{ include "signal-client.secretName" . }}
    defaultMode: 0440
    items:
    {{- range splitList "\n" $items }}
    {{- $key := (splitList "=" .) | last }}
      - key: {{ $key }}
        path: {{ $key }}
    {{- end }}
{{- end }}
{{- if and .Values.redis.tls.enabled .Values.redis.tls.existingSecret }}
- name: redis-tls
  secret:
    secretName: {{ .Values.redis.tls.existingSecret }}
    defaultMode: 0440
    items:
    {{- range $k := list .Values.redis.tls.caKey .Values.redis.tls.certKey .Values.redis.tls.keyKey }}
    {{- if $k }}
      - key: {{ $k }}
        path: {{ $k }}
    {{- end }}
    {{- end }}
{{- end }}
{{- end -}}

{{/* Environment every container shares beyond the ConfigMap: the secret files. */}}
{{- define "signal-client.secretEnv" -}}
{{- $items := include "signal-client.secretItems" . -}}
{{- if $items }}
{{- range splitList "\n" $items }}
{{- $kv := splitList "=" . }}
- name: {{ first $kv }}
  value: /etc/signal-client/secrets/{{ last $kv }}
{{- end }}
{{- end }}
{{- end -}}

{{- define "signal-client.probe" -}}
{{- $p := .probe -}}
httpGet:
  path: {{ .path }}
  port: health
initialDelaySeconds: {{ $p.initialDelaySeconds }}
periodSeconds: {{ $p.periodSeconds }}
timeoutSeconds: {{ $p.timeoutSeconds }}
failureThreshold: {{ $p.failureThreshold }}
successThreshold: {{ $p.successThreshold }}
{{- end -}}

{{/*
Pod template of a component: dict "root" $ "component" "ingester"|"worker"
"binary" name "extraEnv" list "extraVolumes" list "extraMounts" list.
*/}}
{{- define "signal-client.podTemplate" -}}
{{- $root := .root -}}
{{- $c := index $root.Values .component -}}
{{- $sel := include "signal-client.componentSelectorLabels" . -}}
metadata:
  labels:
    {{- include "signal-client.componentLabels" . | nindent 4 }}
    {{- with $c.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  annotations:
    checksum/config: {{ include (print $root.Template.BasePath "/configmap.yaml") $root | sha256sum }}
    checksum/secret: {{ include (print $root.Template.BasePath "/secret.yaml") $root | sha256sum }}
    {{- with $c.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  serviceAccountName: {{ include "signal-client.serviceAccountName" $root }}
  automountServiceAccountToken: {{ $root.Values.automountServiceAccountToken }}
  terminationGracePeriodSeconds: {{ $c.terminationGracePeriodSeconds }}
  {{- with $root.Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $c.priorityClassName }}
  priorityClassName: {{ . }}
  {{- end }}
  securityContext:
    {{- toYaml $root.Values.podSecurityContext | nindent 4 }}
  {{- with $c.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $c.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- if $c.affinity }}
  affinity:
    {{- toYaml $c.affinity | nindent 4 }}
  {{- else if eq $c.podAntiAffinityPreset "soft" }}
  affinity:
    podAntiAffinity:
      preferredDuringSchedulingIgnoredDuringExecution:
        - weight: 100
          podAffinityTerm:
            topologyKey: kubernetes.io/hostname
            labelSelector:
              matchLabels:
                {{- $sel | nindent 16 }}
  {{- else if eq $c.podAntiAffinityPreset "hard" }}
  affinity:
    podAntiAffinity:
      requiredDuringSchedulingIgnoredDuringExecution:
        - topologyKey: kubernetes.io/hostname
          labelSelector:
            matchLabels:
              {{- $sel | nindent 14 }}
  {{- end }}
  {{- with $c.topologySpreadConstraints }}
  topologySpreadConstraints:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  containers:
    - name: {{ .component }}
      image: {{ include "signal-client.image" $root }}
      imagePullPolicy: {{ $root.Values.image.pullPolicy }}
      command: ["/usr/local/bin/{{ .binary }}"]
      ports:
        - name: health
          containerPort: {{ $root.Values.ports.health }}
          protocol: TCP
        - name: metrics
          containerPort: {{ $root.Values.ports.metrics }}
          protocol: TCP
      envFrom:
        - configMapRef:
            name: {{ include "signal-client.fullname" $root }}
      env:
        - name: INSTANCE_ID
          valueFrom:
            fieldRef:
              fieldPath: metadata.name
        {{- include "signal-client.secretEnv" $root | nindent 8 }}
        {{- with (get . "extraEnv") }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
        {{- with $c.extraEnv }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      {{- if $c.livenessProbe.enabled }}
      livenessProbe:
        {{- include "signal-client.probe" (dict "probe" $c.livenessProbe "path" "/live") | nindent 8 }}
      {{- end }}
      {{- if $c.readinessProbe.enabled }}
      readinessProbe:
        {{- include "signal-client.probe" (dict "probe" $c.readinessProbe "path" "/ready") | nindent 8 }}
      {{- end }}
      {{- if $c.startupProbe.enabled }}
      startupProbe:
        {{- include "signal-client.probe" (dict "probe" $c.startupProbe "path" "/live") | nindent 8 }}
      {{- end }}
      {{- with $c.resources }}
      resources:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      securityContext:
        {{- toYaml $root.Values.containerSecurityContext | nindent 8 }}
      volumeMounts:
        - name: tmp
          mountPath: /tmp
        {{- include "signal-client.secretVolumeMounts" $root | nindent 8 }}
        {{- with (get . "extraMounts") }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
        {{- with $c.extraVolumeMounts }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
  volumes:
    - name: tmp
      emptyDir:
        sizeLimit: 64Mi
    {{- include "signal-client.secretVolumes" $root | nindent 4 }}
    {{- with (get . "extraVolumes") }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
    {{- with $c.extraVolumes }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
{{- end -}}
