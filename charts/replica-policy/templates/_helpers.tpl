{{/*
Labels of every object's metadata: the two that manifests/ adds (kustomize labels:), then the
chart's own. The drift test (test/chart) sets the chart's own aside.
*/}}
{{- define "replica-policy.labels" -}}
app.kubernetes.io/name: replica-policy
app.kubernetes.io/part-of: replica-policy
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}

{{/*
The webhook pods' selector. Immutable on a Deployment: never add the chart's own labels here.
*/}}
{{- define "replica-policy.selector" -}}
app.kubernetes.io/name: replica-policy
app.kubernetes.io/component: webhook
{{- end }}

{{/* The image reference: repository@digest, else repository:tag (appVersion by default). */}}
{{- define "replica-policy.image" -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}
{{- end }}

{{/* The policy ConfigMap's name. */}}
{{- define "replica-policy.policyConfigMap" -}}
{{- .Values.policy.existingConfigMap | default "replica-policy" -}}
{{- end }}

{{/*
The serving certificate's DNS names, in-cluster names first (the certs tool's order).
*/}}
{{- define "replica-policy.dnsNames" -}}
{{- $svc := "replica-policy-webhook" -}}
{{- $names := list (printf "%s.%s.svc" $svc .Release.Namespace) (printf "%s.%s.svc.cluster.local" $svc .Release.Namespace) (printf "%s.%s" $svc .Release.Namespace) $svc -}}
{{- range .Values.certificates.extraSANs -}}
{{- if not (regexMatch "^[0-9.]+$|:" .) -}}
{{- $names = append $names . -}}
{{- end -}}
{{- end -}}
{{- toJson $names -}}
{{- end }}

{{/* The serving certificate's IP addresses (the IP entries of certificates.extraSANs). */}}
{{- define "replica-policy.ipSANs" -}}
{{- $ips := list -}}
{{- range .Values.certificates.extraSANs -}}
{{- if regexMatch "^[0-9.]+$|:" . -}}
{{- $ips = append $ips . -}}
{{- end -}}
{{- end -}}
{{- toJson $ips -}}
{{- end }}

{{/*
TLS material as a YAML mapping of base64 values (tls.crt, tls.key, ca.crt):
- generate: the Secret replica-policy-webhook-tls as the cluster holds it (lookup), so that an
  upgrade or rollback keeps the CA and the certificate; else a new ECDSA P-256 CA and serving
  certificate. `lookup` answers nothing without a cluster (helm template), which then renders
  new ones each time.
- existingSecret: ca.crt only, from certificates.existingSecret.caBundle or the Secret.
Render it once per template file: each call generates anew.
*/}}
{{- define "replica-policy.tls" -}}
{{- $c := .Values.certificates -}}
{{- if eq $c.mode "generate" -}}
{{- $s := lookup "v1" "Secret" .Release.Namespace "replica-policy-webhook-tls" -}}
{{- $d := $s.data | default dict -}}
{{- if and (index $d "tls.crt") (index $d "tls.key") (index $d "ca.crt") -}}
tls.crt: {{ index $d "tls.crt" }}
tls.key: {{ index $d "tls.key" }}
ca.crt: {{ index $d "ca.crt" }}
{{- else -}}
{{- $ips := include "replica-policy.ipSANs" . | fromJsonArray -}}
{{- $dns := include "replica-policy.dnsNames" . | fromJsonArray -}}
{{- $ca := genCAWithKey "replica-policy-webhook-ca" (int $c.generate.caValidityDays) (genPrivateKey "ecdsa") -}}
{{- $cert := genSignedCertWithKey (first $dns) $ips $dns (int $c.generate.validityDays) $ca (genPrivateKey "ecdsa") -}}
tls.crt: {{ $cert.Cert | b64enc }}
tls.key: {{ $cert.Key | b64enc }}
ca.crt: {{ $ca.Cert | b64enc }}
{{- end -}}
{{- else if eq $c.mode "existingSecret" -}}
{{- if $c.existingSecret.caBundle -}}
ca.crt: {{ $c.existingSecret.caBundle | b64enc }}
{{- else -}}
{{- $s := lookup "v1" "Secret" .Release.Namespace $c.existingSecret.name -}}
{{- $ca := index ($s.data | default dict) "ca.crt" -}}
{{- if not $ca -}}
{{- fail (printf "certificates.existingSecret: Secret %s/%s has no ca.crt (or there is no cluster to read it from, as with helm template): set certificates.existingSecret.caBundle to the PEM CA that signed its tls.crt" .Release.Namespace $c.existingSecret.name) -}}
{{- end -}}
ca.crt: {{ $ca }}
{{- end -}}
{{- end -}}
{{- end }}

{{/* The TLS Secret's name. */}}
{{- define "replica-policy.tlsSecret" -}}
{{- if eq .Values.certificates.mode "existingSecret" -}}
{{- .Values.certificates.existingSecret.name -}}
{{- else -}}
replica-policy-webhook-tls
{{- end -}}
{{- end }}
