{{/* The services beside the API and the workers: what each runs, as which Kafka principal,
what its readiness probe checks (probe.py, from inside the pod) and what it is scaled on.
Commands and principals are the code's (pyproject.toml, infra/services.sh,
genstream/kafka/principals.py); tests/deploy checks that they agree. */}}
{{- define "genstream.components" -}}
- key: outboxRelay
  name: outbox-relay
  principal: outbox-relay
  command: [genstream-outbox-relay]
  ready: [kafka, postgres]
  metricsEnv: GENSTREAM_OUTBOX_METRICS_PORT
- key: processors
  name: processors
  principal: processors
  command: [genstream-processors]
  ready: [kafka]
  metricsEnv: GENSTREAM_PROCESSORS_METRICS_PORT
  env:
    GENSTREAM_PROCESSORS_DATA_DIR: /var/lib/genstream/processors
  # Faust's group: its command and lifecycle inputs are what backs up under load.
  group: genstream-processors
  lagTopics: [jobs.requested, jobs.lifecycle]
- key: projection
  name: projection
  principal: projection
  command: [genstream-projection]
  ready: [kafka, postgres]
  metricsEnv: GENSTREAM_PROJECTION_METRICS_PORT
  group: genstream-projection
  lagTopics: [credits.ledger, jobs.lifecycle]
- key: webhooks
  name: webhooks
  principal: webhooks
  command: [genstream-webhooks]
  ready: [kafka, postgres]
  metricsEnv: GENSTREAM_WEBHOOKS_METRICS_PORT
- key: retryRelay
  name: retry-relay
  principal: retry-relay
  command: [python, -m, gpu_consumers.retry_relay]
  ready: [kafka]
  metricsEnv: GENSTREAM_WORKER_METRICS_PORT
{{- end -}}
