{{/* Names and labels. */}}
{{- define "genstream.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "genstream.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "genstream.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
app.kubernetes.io/name: {{ include "genstream.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* genstream.selector (dict "root" $ "component" NAME) */}}
{{- define "genstream.selector" -}}
app.kubernetes.io/name: {{ include "genstream.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "genstream.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "genstream.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "genstream.image" -}}
{{- printf "%s:%s" .repository (default .appVersion .tag) -}}
{{- end -}}

{{- define "genstream.secretName" -}}
{{- default (printf "%s-secrets" (include "genstream.fullname" .)) .Values.secrets.existingSecret -}}
{{- end -}}

{{/* Kafka: Strimzi's bootstrap service when the chart declares the cluster. */}}
{{- define "genstream.kafkaBootstrap" -}}
{{- if .Values.kafka.strimzi.enabled -}}
{{- $port := ternary 9093 9092 (hasSuffix "SSL" .Values.kafka.securityProtocol) -}}
{{- printf "%s-kafka-bootstrap:%d" .Values.kafka.strimzi.clusterName $port -}}
{{- else -}}
{{- required "kafka.bootstrapServers is required without kafka.strimzi.enabled" .Values.kafka.bootstrapServers -}}
{{- end -}}
{{- end -}}

{{- define "genstream.kafkaSasl" -}}
{{- if hasPrefix "SASL_" .Values.kafka.securityProtocol -}}true{{- end -}}
{{- end -}}

{{/* genstream.partitions (dict "root" $ "topic" NAME): the catalog's partition count. */}}
{{- define "genstream.partitions" -}}
{{- $found := 0 -}}
{{- range .root.Values.kafka.topics -}}
{{- if eq .name $.topic -}}{{- $found = .partitions -}}{{- end -}}
{{- end -}}
{{- if not $found -}}{{- fail (printf "topic %s is not in kafka.topics" .topic) -}}{{- end -}}
{{- $found -}}
{{- end -}}

{{/* genstream.maxReplicas (dict "root" $ "max" N "topics" LIST): N capped at the fewest
partitions of the topics, since a group has no work for more consumers than partitions. */}}
{{- define "genstream.maxReplicas" -}}
{{- $cap := int .max -}}
{{- range .topics -}}
{{- $cap = min $cap (int (include "genstream.partitions" (dict "root" $.root "topic" .))) -}}
{{- end -}}
{{- $cap -}}
{{- end -}}

{{/* genstream.env (dict "root" $ "principal" NAME "env" MAP): what every container gets
beside the shared ConfigMap and Secret: Kafka's address and this service's principal (none
for a run that does not talk to Kafka). */}}
{{- define "genstream.env" -}}
- name: GENSTREAM_KAFKA__BOOTSTRAP_SERVERS
  value: {{ include "genstream.kafkaBootstrap" .root | quote }}
- name: GENSTREAM_KAFKA__SECURITY_PROTOCOL
  value: {{ .root.Values.kafka.securityProtocol | quote }}
{{- if and .principal (include "genstream.kafkaSasl" .root) }}
- name: GENSTREAM_KAFKA__SASL_MECHANISM
  value: {{ .root.Values.kafka.saslMechanism | quote }}
- name: GENSTREAM_KAFKA__SASL_USERNAME
  value: {{ .principal | quote }}
- name: GENSTREAM_KAFKA__SASL_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ printf "%s%s" .root.Values.kafka.credentials.secretPrefix .principal }}
      key: password
{{- end }}
{{- with .root.Values.tracing }}
{{- if .endpoint }}
- name: OTEL_EXPORTER_OTLP_ENDPOINT
  value: {{ .endpoint | quote }}
- name: OTEL_TRACES_SAMPLER
  value: {{ .sampler | quote }}
{{- if .ratio }}
- name: OTEL_TRACES_SAMPLER_ARG
  value: {{ .ratio | toString | quote }}
{{- end }}
{{- end }}
{{- end }}
{{- range $name, $value := .env }}
- name: {{ $name }}
  value: {{ $value | toString | quote }}
{{- end }}
{{- end -}}

{{- define "genstream.envFrom" -}}
- configMapRef:
    name: {{ include "genstream.fullname" . }}-config
- secretRef:
    name: {{ include "genstream.secretName" . }}
{{- end -}}

{{/* genstream.probeExec LIST: an exec probe of infra/deploy/docker/probe.py. */}}
{{- define "genstream.probeExec" -}}
exec:
  command:
    - python
    - /opt/genstream/probe.py
{{- range . }}
    - {{ . | quote }}
{{- end }}
{{- end -}}

{{/* The writable places of a read-only root file system. */}}
{{- define "genstream.volumes" -}}
- name: state
  emptyDir: {}
- name: tmp
  emptyDir: {}
{{- end -}}

{{- define "genstream.volumeMounts" -}}
- name: state
  mountPath: /var/lib/genstream
- name: tmp
  mountPath: /tmp
{{- end -}}

{{/* genstream.pdb (dict "root" $ "component" NAME "pdb" MAP) */}}
{{- define "genstream.pdb" -}}
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ include "genstream.fullname" .root }}-{{ .component }}
  labels:
    {{- include "genstream.labels" .root | nindent 4 }}
    app.kubernetes.io/component: {{ .component }}
spec:
  {{- if hasKey .pdb "minAvailable" }}
  minAvailable: {{ .pdb.minAvailable }}
  {{- else }}
  maxUnavailable: {{ .pdb.maxUnavailable | default 1 }}
  {{- end }}
  selector:
    matchLabels:
      {{- include "genstream.selector" (dict "root" .root "component" .component) | nindent 6 }}
{{- end -}}

{{/* genstream.kafkaTrigger (dict "root" $ "name" TRIGGER "group" G "topic" T "lag" N
"principal" P): KEDA's Kafka scaler on group G's lag over topic T. */}}
{{- define "genstream.kafkaTrigger" -}}
- type: kafka
  name: {{ .name }}
  metadata:
    bootstrapServers: {{ include "genstream.kafkaBootstrap" .root | quote }}
    consumerGroup: {{ .group | quote }}
    topic: {{ .topic | quote }}
    lagThreshold: {{ .lag | toString | quote }}
    activationLagThreshold: "0"
    offsetResetPolicy: earliest
    allowIdleConsumers: "false"
    scaleToZeroOnInvalidOffset: "false"
    {{- if include "genstream.kafkaSasl" .root }}
    sasl: {{ get (dict "PLAIN" "plaintext" "SCRAM-SHA-256" "scram_sha256" "SCRAM-SHA-512" "scram_sha512") .root.Values.kafka.saslMechanism | quote }}
    {{- end }}
    {{- if hasSuffix "SSL" .root.Values.kafka.securityProtocol }}
    tls: enable
    {{- end }}
  {{- if include "genstream.kafkaSasl" .root }}
  authenticationRef:
    name: {{ include "genstream.fullname" .root }}-kafka-{{ .principal }}
  {{- end }}
{{- end -}}

{{/* genstream.configData MAP: the entries that are set, as strings (null: the default). */}}
{{- define "genstream.configData" -}}
{{- $data := dict -}}
{{- range $name, $value := . -}}
{{- if not (kindIs "invalid" $value) -}}{{- $_ := set $data $name (toString $value) -}}{{- end -}}
{{- end -}}
{{- toYaml $data -}}
{{- end -}}

{{/* genstream.jobPod (dict "root" $ "name" N "command" LIST "config" NAME "secret" NAME
"principal" P "resources" MAP "backoffLimit" N "serviceAccount" NAME): a one-off run of the
services' image; without serviceAccount, the namespace's default one. */}}
{{- define "genstream.jobSpec" -}}
backoffLimit: {{ .backoffLimit }}
ttlSecondsAfterFinished: 86400
template:
  metadata:
    labels:
      {{- include "genstream.selector" (dict "root" .root "component" .name) | nindent 6 }}
  spec:
    restartPolicy: Never
    {{- if .serviceAccount }}
    serviceAccountName: {{ .serviceAccount }}
    {{- end }}
    automountServiceAccountToken: false
    {{- with .root.Values.imagePullSecrets }}
    imagePullSecrets:
      {{- toYaml . | nindent 6 }}
    {{- end }}
    securityContext:
      {{- toYaml .root.Values.podSecurityContext | nindent 6 }}
    containers:
      - name: {{ .name }}
        image: {{ include "genstream.image" (merge (dict "appVersion" .root.Chart.AppVersion) .root.Values.image) }}
        imagePullPolicy: {{ .root.Values.image.pullPolicy }}
        command:
          {{- toYaml .command | nindent 10 }}
        envFrom:
          - configMapRef:
              name: {{ .config }}
          - secretRef:
              name: {{ .secret }}
        env:
          {{- include "genstream.env" (dict "root" .root "principal" .principal "env" dict) | nindent 10 }}
        resources:
          {{- toYaml .resources | nindent 10 }}
        securityContext:
          {{- toYaml .root.Values.containerSecurityContext | nindent 10 }}
        volumeMounts:
          {{- include "genstream.volumeMounts" .root | nindent 10 }}
    volumes:
      {{- include "genstream.volumes" .root | nindent 6 }}
{{- end -}}

{{/* Every Kafka principal the release's pods connect as. */}}
{{- define "genstream.principals" -}}
- api
{{- range include "genstream.components" . | fromYamlArray }}
- {{ .principal }}
{{- end }}
{{- range $workload, $w := .Values.workers }}
{{- if $w.enabled }}
- worker-{{ $workload }}
{{- end }}
{{- end }}
{{- if .Values.bootstrap.enabled }}
- {{ .Values.bootstrap.kafkaPrincipal }}
{{- end }}
{{- end -}}
