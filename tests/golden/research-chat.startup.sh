#!/bin/bash
# inferstack startup script for research/chat: rendered from templates/gcp_startup.sh.j2.
#
# Container-Optimized OS: the GPU driver is installed at boot (cos-extensions), the weights are
# fetched by the Cloud CLI in a container on the host network with the VM's dedicated service
# account (through the metadata server), and the engine runs on Docker's bridge, which cannot
# reach the metadata server at all: an iptables rule on DOCKER-USER, the counterpart of IMDSv2's
# hop limit on AWS. There is no external IP: Google APIs and Artifact Registry are reached over
# Private Google Access. The script runs at every boot.
set -euo pipefail

# 0. First thing at every boot (iptables rules do not survive one): nothing on Docker's bridge
#    reaches the metadata server, and an engine Docker restarted before this line is replaced.
#    Docker creates DOCKER-USER when it starts; this script may run before it does, so the chain
#    is created here when missing. Docker keeps an existing DOCKER-USER chain and its rules
#    (libnetwork firewall_linux.go: "Docker will not delete or modify any pre-existing rules")
#    and processes it before its own chains (Docker docs, "Docker with iptables"). Some Docker
#    releases did not add the FORWARD jump when the chain already existed (moby/libnetwork#2631,
#    "failing open"), so the jump is ensured here too; Docker moves its identical jump to the top.
iptables -N DOCKER-USER 2>/dev/null || true
iptables -C FORWARD -j DOCKER-USER 2>/dev/null || iptables -I FORWARD -j DOCKER-USER
iptables -C DOCKER-USER -i docker0 -d 169.254.169.254 -j DROP 2>/dev/null \
  || iptables -I DOCKER-USER -i docker0 -d 169.254.169.254 -j DROP
docker rm -f engine >/dev/null 2>&1 || true

METADATA=http://metadata.google.internal/computeMetadata/v1
meta() { curl -sf -H 'Metadata-Flavor: Google' "$METADATA/$1"; }
INSTANCE_ID=$(meta instance/id)
ZONE=$(meta instance/zone | awk -F/ '{ print $NF }')
STATE=/mnt/stateful_partition/inferstack
MODEL_DIR="$STATE/models/llama-3-8b"
# Container-Optimized OS mounts root's home read-only: docker-credential-gcr would fail to write
# ~/.docker/config.json and end the script under set -e. The Docker client reads and writes its
# config under DOCKER_CONFIG instead, on the writable stateful partition.
export DOCKER_CONFIG="$STATE/docker"
mkdir -p "$DOCKER_CONFIG"

# 1. The GPU driver, and its libraries made executable for the containers.
cos-extensions install gpu -- --version=latest
mount --bind /var/lib/nvidia /var/lib/nvidia
mount -o remount,exec /var/lib/nvidia
TENSOR_PARALLEL=$(/var/lib/nvidia/bin/nvidia-smi --list-gpus | wc -l)

# 2. Weights, read-only for the service account (only this prefix of the bucket).
mkdir -p "$MODEL_DIR"
docker run --rm --network host --volume "$MODEL_DIR":/models gcr.io/google.com/cloudsdktool/google-cloud-cli:576.0.0-stable \
  gcloud storage rsync --recursive gs://acme-models-europe-west4/meta-llama/Llama-3.1-8B-Instruct/ /models

# 3. The engine: every GPU of the VM, weights mounted read-only, no extra privileges.
docker-credential-gcr configure-docker --registries=europe-west4-docker.pkg.dev
docker pull europe-west4-docker.pkg.dev/acme-ml-staging/serving/vllm-openai@sha256:0d4c8d8bd1b4dbbd4ec0a02c4ec7c2fa4f2e3db0e8ee7c1d9b3a1f0e5d6c7b8a
DEVICES=()
for device in /dev/nvidia*; do DEVICES+=(--device "$device:$device"); done
docker run --detach --name engine --restart unless-stopped \
  "${DEVICES[@]}" \
  --volume /var/lib/nvidia/lib64:/usr/local/nvidia/lib64:ro --volume /var/lib/nvidia/bin:/usr/local/nvidia/bin:ro \
  --env LD_LIBRARY_PATH=/usr/local/nvidia/lib64 --shm-size 16g \
  --security-opt no-new-privileges --cap-drop ALL \
  --read-only --volume inferstack-cache:/cache --tmpfs /tmp:rw,exec,nosuid,nodev,size=16g --env DO_NOT_TRACK=1 --env HF_HOME=/cache/huggingface --env HF_HUB_DISABLE_TELEMETRY=1 --env HF_HUB_OFFLINE=1 --env HOME=/cache --env TORCHINDUCTOR_CACHE_DIR=/cache/inductor --env TRANSFORMERS_OFFLINE=1 --env TRITON_CACHE_DIR=/cache/triton --env VLLM_CACHE_ROOT=/cache/vllm --env VLLM_DO_NOT_TRACK=1 --env VLLM_NO_USAGE_STATS=1 --env XDG_CACHE_HOME=/cache \
  --publish 8000:8000 \
  --volume "$MODEL_DIR":/models/llama-3-8b:ro \
  --log-driver gcplogs \
  europe-west4-docker.pkg.dev/acme-ml-staging/serving/vllm-openai@sha256:0d4c8d8bd1b4dbbd4ec0a02c4ec7c2fa4f2e3db0e8ee7c1d9b3a1f0e5d6c7b8a \
  --model /models/llama-3-8b --served-model-name llama-3-8b --host 0.0.0.0 --port 8000 --max-model-len 8192 --tensor-parallel-size "$TENSOR_PARALLEL"

# 4. The engine's metrics: the OpenTelemetry Collector scrapes /metrics every
#    30 s and writes the series the dashboard and the alerts read to Managed Service
#    for Prometheus, labelled inferstack_target=assistant-research-chat. It runs on the host network: it
#    reaches the engine on 127.0.0.1 and the metadata server for the service account's token.
OTEL_DIR="$STATE/otel"
mkdir -p "$OTEL_DIR"
cat > "$OTEL_DIR/config.yaml" <<'OTEL'
{
  "exporters": {
    "googlemanagedprometheus": {}
  },
  "extensions": {
    "health_check": {
      "endpoint": "127.0.0.1:13133"
    }
  },
  "processors": {
    "batch": {
      "send_batch_max_size": 200,
      "send_batch_size": 200,
      "timeout": "5s"
    },
    "memory_limiter": {
      "check_interval": "1s",
      "limit_percentage": 65,
      "spike_limit_percentage": 20
    },
    "resourcedetection": {
      "detectors": [
        "gcp"
      ],
      "timeout": "10s"
    }
  },
  "receivers": {
    "prometheus": {
      "config": {
        "scrape_configs": [
          {
            "job_name": "engine",
            "metric_relabel_configs": [
              {
                "action": "keep",
                "regex": "(http_requests_total|vllm:e2e_request_latency_seconds_bucket|vllm:e2e_request_latency_seconds_count|vllm:e2e_request_latency_seconds_sum|vllm:generation_tokens_total|vllm:num_requests_running|vllm:num_requests_waiting|vllm:time_to_first_token_seconds_bucket|vllm:time_to_first_token_seconds_count|vllm:time_to_first_token_seconds_sum)",
                "source_labels": [
                  "__name__"
                ]
              }
            ],
            "metrics_path": "/metrics",
            "scrape_interval": "30s",
            "scrape_timeout": "10s",
            "static_configs": [
              {
                "labels": {
                  "inferstack_target": "assistant-research-chat",
                  "instance": "${env:INFERSTACK_INSTANCE}"
                },
                "targets": [
                  "127.0.0.1:8000"
                ]
              }
            ]
          }
        ]
      }
    }
  },
  "service": {
    "extensions": [
      "health_check"
    ],
    "pipelines": {
      "metrics": {
        "exporters": [
          "googlemanagedprometheus"
        ],
        "processors": [
          "memory_limiter",
          "resourcedetection",
          "batch"
        ],
        "receivers": [
          "prometheus"
        ]
      }
    }
  }
}
OTEL
docker pull us-docker.pkg.dev/cloud-ops-agents-artifacts/google-cloud-opentelemetry-collector/otelcol-google:0.160.0
docker rm -f collector >/dev/null 2>&1 || true
docker run --detach --name collector --restart unless-stopped --network host \
  --read-only --security-opt no-new-privileges --cap-drop ALL \
  --env INFERSTACK_INSTANCE="$(meta instance/name)" \
  --volume "$OTEL_DIR/config.yaml":/etc/otelcol-google/config.yaml:ro \
  --log-driver gcplogs \
  us-docker.pkg.dev/cloud-ops-agents-artifacts/google-cloud-opentelemetry-collector/otelcol-google:0.160.0 --config=/etc/otelcol-google/config.yaml

# 5. The node agent: GPU utilisation and memory (nvidia-smi, NVML's counters) to Cloud Monitoring
#    every minute as custom.googleapis.com/inferstack/gpu/utilization and custom.googleapis.com/inferstack/gpu/memory_used.
#    The autoscaling signal (queue_depth) to Cloud Monitoring as custom.googleapis.com/inferstack/pending_requests, every 15 s.
#    A per-group metric: every VM writes its own series for group assistant-research-chat-zcb22, labelled with its
#    instance id; the autoscaler sums them and divides by the target.
#    It also publishes custom.googleapis.com/inferstack/busy_instances (1 while requests are in flight), which keeps
#    the autoscaler from removing busy nodes (queue_depth alone cannot see them).
#    The agent publishes only while the engine answers its health check: a booting node would
#    publish 0 and drag the group's figure down (GPU utilisation most of all).
mkdir -p "$STATE/bin"
cat > "$STATE/bin/metrics" <<'AGENT'
#!/bin/bash
# inferstack metrics agent for research/chat.
set -uo pipefail
METADATA=http://metadata.google.internal/computeMetadata/v1
meta() { curl -sf -H 'Metadata-Flavor: Google' "$METADATA/$1"; }

healthy() {
  curl -sf --max-time 5 http://127.0.0.1:8000/health >/dev/null
}

# The sum of the engine's gauges named in the arguments (labels allowed); nothing if none is seen.
gauges() {
  curl -sf --max-time 5 http://127.0.0.1:8000/metrics \
    | awk -v names="$*" 'BEGIN { n = split(names, want, " ") }
        { for (i = 1; i <= n; i++) if ($1 == want[i] || index($1, want[i] "{") == 1) { s += $NF; seen = 1 } }
        END { if (seen) print s }'
}

in_flight() {
  gauges vllm:num_requests_running vllm:num_requests_waiting
}

signal() {
  gauges vllm:num_requests_waiting
}

# gpu: "UTILISATION BYTES", the mean utilisation (percent) and the summed memory of the VM's GPUs.
gpu() {
  /var/lib/nvidia/bin/nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader,nounits \
    | awk -F', *' '{ u += $1; m += $2; n += 1 } END { if (n) printf "%.1f %.0f\n", u / n, m * 1048576 }'
}

# publish METRIC VALUE RESOURCE LABELS: one point of one series to Cloud Monitoring.
publish() {
  local token now
  token=$(meta instance/service-accounts/default/token | sed -E 's/.*"access_token":"([^"]+)".*/\1/')
  now=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  curl -sf --max-time 10 -X POST -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
    "https://monitoring.googleapis.com/v3/projects/acme-ml-staging/timeSeries" \
    -d "{\"timeSeries\": [{\"metric\": {\"type\": \"$1\", \"labels\": $4}, \"resource\": $3, \"points\": [{\"interval\": {\"endTime\": \"$now\"}, \"value\": {\"doubleValue\": $2}}]}]}" \
    >/dev/null || true
}

# gpu_point METRIC VALUE TIME: one point of one of this VM's GPU series.
gpu_point() {
  echo "{\"metric\": {\"type\": \"$1\", \"labels\": {\"inferstack_target\": \"assistant-research-chat\"}}, \"resource\": $instance_resource, \"points\": [{\"interval\": {\"endTime\": \"$3\"}, \"value\": {\"doubleValue\": $2}}]}"
}

# publish_gpu UTILISATION BYTES: both GPU series of this VM in one request.
publish_gpu() {
  local token now
  token=$(meta instance/service-accounts/default/token | sed -E 's/.*"access_token":"([^"]+)".*/\1/')
  now=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  curl -sf --max-time 10 -X POST -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
    "https://monitoring.googleapis.com/v3/projects/acme-ml-staging/timeSeries" \
    -d "{\"timeSeries\": [$(gpu_point custom.googleapis.com/inferstack/gpu/utilization "$1" "$now"), $(gpu_point custom.googleapis.com/inferstack/gpu/memory_used "$2" "$now")]}" \
    >/dev/null || true
}

INSTANCE_ID=$(meta instance/id)
ZONE=$(meta instance/zone | awk -F/ '{ print $NF }')
instance_resource="{\"type\": \"gce_instance\", \"labels\": {\"project_id\": \"acme-ml-staging\", \"instance_id\": \"$INSTANCE_ID\", \"zone\": \"$ZONE\"}}"
group_resource='{"type": "global", "labels": {"project_id": "acme-ml-staging"}}'
group_labels="{\"group\": \"assistant-research-chat-zcb22\", \"instance\": \"$INSTANCE_ID\"}"
tick=0
while true; do
  if healthy; then
    # Every fourth tick (a minute): Cloud Monitoring bills custom metrics by the sample.
    if [ $((tick % 4)) -eq 0 ]; then
      read -r utilisation memory < <(gpu) && [ -n "$memory" ] && publish_gpu "$utilisation" "$memory"
    fi
    value=$(signal)
    if [ -n "$value" ]; then publish custom.googleapis.com/inferstack/pending_requests "$value" "$group_resource" "$group_labels"; fi
    busy=$(in_flight | awk '{ print ($1 > 0) ? 1 : 0 }')
    if [ -n "$busy" ]; then publish custom.googleapis.com/inferstack/busy_instances "$busy" "$group_resource" "$group_labels"; fi
  fi
  tick=$((tick + 1))
  sleep 15
done
AGENT
chmod 0755 "$STATE/bin/metrics"
cat > /etc/systemd/system/inferstack-metrics.service <<UNIT
[Unit]
Description=inferstack: publish GPU metrics and the autoscaling signal to Cloud Monitoring
After=docker.service
[Service]
# The stateful partition is mounted noexec on Container-Optimized OS: run the agent through bash.
ExecStart=/bin/bash $STATE/bin/metrics
Restart=always
UNIT
systemctl daemon-reload
systemctl start inferstack-metrics.service

# 6. Ready when the engine answers /health on port 8000; the managed instance
#    group's auto-healing waits out the initial delay first.
until curl -sf --max-time 5 http://127.0.0.1:8000/health >/dev/null; do sleep 10; done
echo "inferstack: engine healthy on port 8000 ($INSTANCE_ID in $ZONE)"
