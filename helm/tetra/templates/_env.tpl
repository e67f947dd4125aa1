{{/* Every broker setting as its TETRA_* env variable (src/config.ts SETTINGS; test/helm/chart.test.ts checks the list) */}}
{{- define "tetra.env" -}}
- name: TETRA_HOST
  value: {{ include "tetra.envValue" .Values.config.host }}
- name: TETRA_MQTT_PORT
  value: {{ include "tetra.envValue" .Values.config.mqttPort }}
- name: TETRA_HTTP_PORT
  value: {{ include "tetra.envValue" .Values.config.httpPort }}
- name: TETRA_DATA_DIR
  value: {{ include "tetra.envValue" .Values.config.dataDir }}
- name: TETRA_LOG_LEVEL
  value: {{ include "tetra.envValue" .Values.config.logLevel }}
- name: TETRA_FSYNC
  value: {{ include "tetra.envValue" .Values.config.fsync }}
- name: TETRA_FSYNC_INTERVAL
  value: {{ include "tetra.envValue" .Values.config.fsyncIntervalMs }}
- name: TETRA_HTTP_BODY_LIMIT
  value: {{ include "tetra.envValue" .Values.config.httpBodyLimit }}
- name: TETRA_SHUTDOWN_TIMEOUT
  value: {{ include "tetra.envValue" .Values.config.shutdownTimeoutMs }}
- name: TETRA_SSE_HEARTBEAT
  value: {{ include "tetra.envValue" .Values.config.sseHeartbeatMs }}
- name: TETRA_MQTT_SYS_INTERVAL
  value: {{ include "tetra.envValue" .Values.config.mqttSysIntervalMs }}
- name: TETRA_STORE_MAX_MEMORY
  value: {{ include "tetra.envValue" .Values.config.storeMaxMemory }}
- name: TETRA_STORE_EVICTION
  value: {{ include "tetra.envValue" .Values.config.storeEviction }}
- name: TETRA_STORE_MAX_VALUE
  value: {{ include "tetra.envValue" .Values.config.storeMaxValue }}
- name: TETRA_STORE_WATCH_BACKLOG
  value: {{ include "tetra.envValue" .Values.config.storeWatchBacklog }}
- name: TETRA_STREAM_AUTOCREATE
  value: {{ include "tetra.envValue" .Values.config.streamAutocreate }}
- name: TETRA_STREAM_MAX_MESSAGE_SIZE
  value: {{ include "tetra.envValue" .Values.config.streamMaxMessageBytes }}
- name: TETRA_STREAM_DEDUP_WINDOW
  value: {{ include "tetra.envValue" .Values.config.streamDedupWindowMs }}
- name: TETRA_QUEUE_AUTOCREATE
  value: {{ include "tetra.envValue" .Values.config.queueAutocreate }}
{{- if include "tetra.authEnabled" . }}
- name: TETRA_AUTH_FILE
  value: {{ include "tetra.envValue" .Values.config.authFile }}
{{- end }}
- name: TETRA_ALLOW_ANONYMOUS
  value: {{ include "tetra.envValue" .Values.config.allowAnonymous }}
{{- if .Values.tls.existingSecret }}
- name: TETRA_TLS_CERT
  value: {{ include "tetra.envValue" .Values.config.tlsCert }}
- name: TETRA_TLS_KEY
  value: {{ include "tetra.envValue" .Values.config.tlsKey }}
{{- if .Values.tls.clientCa }}
- name: TETRA_TLS_CA
  value: {{ include "tetra.envValue" .Values.config.tlsCa }}
{{- end }}
{{- end }}
- name: TETRA_MQTTS_PORT
  value: {{ include "tetra.envValue" .Values.config.mqttsPort }}
- name: TETRA_MQTT_DENY_DISCONNECT
  value: {{ include "tetra.envValue" .Values.config.mqttDenyDisconnect }}
- name: TETRA_MQTT_MAX_PACKET_SIZE
  value: {{ include "tetra.envValue" .Values.config.mqttMaxPacketSize }}
- name: TETRA_MQTT_MAX_CONNECTIONS
  value: {{ include "tetra.envValue" .Values.config.mqttMaxConnections }}
- name: TETRA_MQTT_MAX_CONNECTIONS_PER_USER
  value: {{ include "tetra.envValue" .Values.config.mqttMaxConnectionsPerUser }}
- name: TETRA_MQTT_CONNECT_RATE
  value: {{ include "tetra.envValue" .Values.config.mqttConnectRate }}
- name: TETRA_MQTT_MAX_INFLIGHT
  value: {{ include "tetra.envValue" .Values.config.mqttMaxInflight }}
- name: TETRA_MQTT_MAX_QUEUED
  value: {{ include "tetra.envValue" .Values.config.mqttMaxQueued }}
- name: TETRA_MQTT_MAX_WAITING
  value: {{ include "tetra.envValue" .Values.config.mqttMaxWaiting }}
- name: TETRA_MQTT_MAX_TOPIC_LENGTH
  value: {{ include "tetra.envValue" .Values.config.mqttMaxTopicLength }}
- name: TETRA_MQTT_MAX_TOPIC_LEVELS
  value: {{ include "tetra.envValue" .Values.config.mqttMaxTopicLevels }}
- name: TETRA_MQTT_KEEPALIVE_MIN
  value: {{ include "tetra.envValue" .Values.config.mqttKeepAliveMin }}
- name: TETRA_MQTT_KEEPALIVE_MAX
  value: {{ include "tetra.envValue" .Values.config.mqttKeepAliveMax }}
- name: TETRA_MQTT_TOPIC_ALIAS_MAX
  value: {{ include "tetra.envValue" .Values.config.mqttTopicAliasMax }}
- name: TETRA_MQTT_RECEIVE_MAXIMUM
  value: {{ include "tetra.envValue" .Values.config.mqttReceiveMaximum }}
- name: TETRA_MQTT_MAX_QOS
  value: {{ include "tetra.envValue" .Values.config.mqttMaxQos }}
- name: TETRA_MQTT_RETAIN_AVAILABLE
  value: {{ include "tetra.envValue" .Values.config.mqttRetainAvailable }}
- name: TETRA_HTTP_RATE_LIMIT
  value: {{ include "tetra.envValue" .Values.config.httpRateLimit }}
- name: TETRA_SSE_MAX_STREAMS
  value: {{ include "tetra.envValue" .Values.config.sseMaxStreams }}
- name: TETRA_CORS_ORIGIN
  value: {{ include "tetra.envValue" .Values.config.corsOrigin }}
- name: TETRA_DASHBOARD
  value: {{ include "tetra.envValue" .Values.config.dashboard }}
{{- end -}}
