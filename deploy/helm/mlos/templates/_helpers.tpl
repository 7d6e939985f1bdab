{{/* Names and labels. */}}
{{- define "mlos.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}{{ .Release.Name | trunc 50 | trimSuffix "-" }}
{{- else -}}{{ printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" }}{{- end -}}
{{- end -}}

{{- define "mlos.selectorLabels" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "mlos.labels" -}}
{{ include "mlos.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version }}
{{- end -}}

{{/* The headless Service's name and the executors' DNS names (one per possible pod). */}}
{{- define "mlos.executorAddrs" -}}
{{- $full := include "mlos.fullname" . -}}
{{- $addrs := list -}}
{{- range $i := until (int .Values.executor.maxReplicas) -}}
{{- $addrs = append $addrs (printf "%s-executor-%d.%s-executor.%s.svc:%d" $full $i $full $.Release.Namespace (int $.Values.executor.grpcPort)) -}}
{{- end -}}
{{- join "," $addrs -}}
{{- end -}}

{{- define "mlos.tokensSecret" -}}
{{- .Values.auth.existingSecret | default (printf "%s-tokens" (include "mlos.fullname" .)) -}}
{{- end -}}
{{- define "mlos.tlsSecret" -}}
{{- .Values.tls.existingSecret | default (printf "%s-tls" (include "mlos.fullname" .)) -}}
{{- end -}}

{{/*
The pod spec every service shares: restricted security, gRPC probes, drain grace, /tmp and the
service's writable folder as volumes (read-only root), token and TLS Secrets as files.
Arguments: root, component (registry|predictor|executor|scheduler), v (its values), env (list),
dataVolume (a volume source for /var/lib/mlos), ports (name -> port).
*/}}
{{- define "mlos.podSpec" -}}
{{- $root := .root -}}
{{- $prefix := printf "MLOS_%s_" (upper .component) -}}
automountServiceAccountToken: false
terminationGracePeriodSeconds: {{ $root.Values.terminationGracePeriodSeconds }}
securityContext:
  runAsNonRoot: true
  runAsUser: 10001
  runAsGroup: 10001
  fsGroup: 10001
  seccompProfile: {type: RuntimeDefault}
{{- with $root.Values.imagePullSecrets }}
imagePullSecrets: {{ toYaml . | nindent 2 }}
{{- end }}
{{- with .v.nodeSelector }}
nodeSelector: {{ toYaml . | nindent 2 }}
{{- end }}
{{- with .v.tolerations }}
tolerations: {{ toYaml . | nindent 2 }}
{{- end }}
containers:
  - name: {{ .component }}
    image: "{{ $root.Values.image.repository }}:{{ $root.Values.image.tag }}"
    imagePullPolicy: {{ $root.Values.image.pullPolicy }}
    securityContext:
      allowPrivilegeEscalation: false
      readOnlyRootFilesystem: true
      runAsNonRoot: true
      capabilities: {drop: [ALL]}
      seccompProfile: {type: RuntimeDefault}
    env:
      - {name: MLOS_SERVICE, value: {{ .component }}}
      - {name: {{ $prefix }}HOST, value: "0.0.0.0"}
      - {name: {{ $prefix }}SHUTDOWN_GRACE_S, value: {{ $root.Values.drainGraceSeconds | quote }}}
      - {name: {{ $prefix }}OTLP_ENDPOINT, value: {{ $root.Values.otlpEndpoint | quote }}}
      {{- range $name, $port := .ports }}
      - {name: {{ $prefix }}{{ upper $name }}, value: {{ $port | quote }}}
      {{- end }}
      {{- with .env }}{{ toYaml . | nindent 6 }}{{- end }}
      {{- range $name, $value := merge (dict) .v.env $root.Values.extraEnv }}
      - {name: {{ $name }}, value: {{ $value | quote }}}
      {{- end }}
    ports:
      {{- range $name, $port := .ports }}
      - {name: {{ trimSuffix "_PORT" $name | replace "_" "-" | lower }}, containerPort: {{ $port }}, protocol: TCP}
      {{- end }}
    startupProbe:
      grpc: {port: {{ .ports.GRPC_PORT }}, service: mlos.liveness}
      periodSeconds: {{ $root.Values.probes.periodSeconds }}
      failureThreshold: {{ $root.Values.probes.startupFailureThreshold }}
    livenessProbe:  # the process answers (mlos.liveness stays SERVING while peers are down)
      grpc: {port: {{ .ports.GRPC_PORT }}, service: mlos.liveness}
      periodSeconds: {{ $root.Values.probes.periodSeconds }}
      timeoutSeconds: {{ $root.Values.probes.timeoutSeconds }}
      failureThreshold: {{ $root.Values.probes.failureThreshold }}
    readinessProbe:  # truthful readiness: SERVING only with its peers and start-up models
      grpc: {port: {{ .ports.GRPC_PORT }}}
      periodSeconds: {{ $root.Values.probes.periodSeconds }}
      timeoutSeconds: {{ $root.Values.probes.timeoutSeconds }}
      failureThreshold: {{ $root.Values.probes.failureThreshold }}
    resources:
      {{- $resources := deepCopy .v.resources }}
      {{- if and .v.gpu (gt (int .v.gpu.count) 0) }}
      {{- $_ := set $resources.limits .v.gpu.resourceName (int .v.gpu.count) }}
      {{- $_ := set $resources.requests .v.gpu.resourceName (int .v.gpu.count) }}
      {{- end }}
      {{- toYaml $resources | nindent 6 }}
    volumeMounts:
      - {name: tmp, mountPath: /tmp}
      - {name: data, mountPath: /var/lib/mlos}
      {{- if or $root.Values.auth.existingSecret $root.Values.auth.tokens }}
      - {name: tokens, mountPath: {{ $root.Values.auth.mountPath }}, readOnly: true}
      {{- end }}
      {{- if or $root.Values.tls.existingSecret $root.Values.tls.cert }}
      - {name: tls, mountPath: {{ $root.Values.tls.mountPath }}, readOnly: true}
      {{- end }}
volumes:
  - name: tmp
    emptyDir: {sizeLimit: 1Gi}
  - name: data
    {{- toYaml .dataVolume | nindent 4 }}
  {{- if or $root.Values.auth.existingSecret $root.Values.auth.tokens }}
  - name: tokens
    secret: {secretName: {{ include "mlos.tokensSecret" $root }}, defaultMode: 0400}
  {{- end }}
  {{- if or $root.Values.tls.existingSecret $root.Values.tls.cert }}
  - name: tls
    secret: {secretName: {{ include "mlos.tlsSecret" $root }}, defaultMode: 0400}
  {{- end }}
{{- end -}}

{{/* A ClusterIP (or headless) Service for one component: the gRPC and metrics ports (+ extra). */}}
{{- define "mlos.service" -}}
apiVersion: v1
kind: Service
metadata:
  name: {{ include "mlos.fullname" .root }}-{{ .component }}
  labels: {{- include "mlos.labels" . | nindent 4 }}
spec:
  {{- if .headless }}
  clusterIP: None
  {{- else }}
  type: {{ .type | default "ClusterIP" }}
  {{- end }}
  selector: {{- include "mlos.selectorLabels" . | nindent 4 }}
  ports:
    {{- range $name, $port := .ports }}
    - {name: {{ trimSuffix "_PORT" $name | replace "_" "-" | lower }}, port: {{ $port }}, targetPort: {{ $port }}, protocol: TCP}
    {{- end }}
{{- end -}}
