#!/bin/bash
# inferstack startup script for batch/batch: rendered from templates/gcp_tpu_startup.sh.j2.
#
# A TPU VM runtime image (Ubuntu with Docker and the Cloud CLI). Every host of the slice runs
# this script; the slice has 16 chips on 4 host(s). The weights are fetched on the host
# with the VM's dedicated service account; the engine (vLLM for TPU) gets the TPU devices and
# unlimited locked memory (the TPU runtime pins its host buffers), nothing else. There is no
# external IP: Google APIs and Artifact Registry are reached over Private Google Access.
set -euo pipefail

METADATA=http://metadata.google.internal/computeMetadata/v1
meta() { curl -sf -H 'Metadata-Flavor: Google' "$METADATA/$1"; }
WORKER=$(meta instance/attributes/agent-worker-number || echo 0)
TENSOR_PARALLEL=16
MODEL_DIR=/var/lib/inferstack/models/llama-3-8b

# 2. Weights, read-only for the service account (only this prefix of the bucket).
mkdir -p "$MODEL_DIR"
gcloud storage rsync --recursive gs://acme-models-europe-west4/meta-llama/Llama-3.1-8B-Instruct/ "$MODEL_DIR"

# 3. The engine image, from Artifact Registry.
gcloud auth configure-docker europe-west4-docker.pkg.dev --quiet
docker pull europe-west4-docker.pkg.dev/acme-ml-staging/serving/vllm-tpu@sha256:5b1f0e7c3a9d2e4f6a8b0c1d3e5f7a9b2c4d6e8f0a1b3c5d7e9f1a2b4c6d8e0f

DEVICES=()
for device in /dev/vfio/* /dev/accel*; do [ -e "$device" ] && DEVICES+=(--device "$device:$device"); done
docker rm -f engine >/dev/null 2>&1 || true
# 4. Several hosts: they form one Ray cluster over the slice's internal network (host
#    networking, the hosts' private IPs), worker 0 heads it and serves port 8000; a
#    firewall rule lets the slice's hosts (its service account) reach each other. On the
#    host network the engine can reach the metadata server; the service account's roles
#    (logs, metrics, this model's weights, this image) bound what it could do with a token.
HEAD=$(meta instance/attributes/worker-network-endpoints | cut -d, -f1 | awk -F: '{ print $NF }')
if [ "$WORKER" = "0" ]; then
  COMMAND="ray start --head --port=6379 && vllm serve $(printf '%q ' --model /models/llama-3-8b --served-model-name llama-3-8b --host 0.0.0.0 --port 8000 --max-model-len 8192 --tensor-parallel-size "$TENSOR_PARALLEL") --distributed-executor-backend ray"
else
  COMMAND="ray start --address=$HEAD:6379 --block"
fi
docker run --detach --name engine --restart unless-stopped \
  "${DEVICES[@]}" --shm-size 16g --ulimit memlock=-1:-1 --network host \
  --security-opt no-new-privileges --cap-drop ALL \
  --read-only --volume inferstack-cache:/cache --tmpfs /tmp:rw,exec,nosuid,nodev,size=16g --env DO_NOT_TRACK=1 --env HF_HOME=/cache/huggingface --env HF_HUB_DISABLE_TELEMETRY=1 --env HF_HUB_OFFLINE=1 --env HOME=/cache --env TORCHINDUCTOR_CACHE_DIR=/cache/inductor --env TRANSFORMERS_OFFLINE=1 --env TRITON_CACHE_DIR=/cache/triton --env VLLM_CACHE_ROOT=/cache/vllm --env VLLM_DO_NOT_TRACK=1 --env VLLM_NO_USAGE_STATS=1 --env XDG_CACHE_HOME=/cache \
  --env TPU_WORKER_ID="$WORKER" \
  --volume "$MODEL_DIR":/models/llama-3-8b:ro \
  europe-west4-docker.pkg.dev/acme-ml-staging/serving/vllm-tpu@sha256:5b1f0e7c3a9d2e4f6a8b0c1d3e5f7a9b2c4d6e8f0a1b3c5d7e9f1a2b4c6d8e0f \
  bash -c "$COMMAND"

# 5. The engine's metrics, on worker 0 (the one that serves): the OpenTelemetry Collector scrapes
#    /metrics every 30 s and writes the series the dashboard and the alerts read to
#    Managed Service for Prometheus, labelled inferstack_target=assistant-batch-batch. The TPU runtime's own
#    metrics (duty cycle, HBM) reach Cloud Monitoring without an agent.
if [ "$WORKER" = "0" ]; then
OTEL_DIR=/var/lib/inferstack/otel
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
                  "inferstack_target": "assistant-batch-batch",
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
fi

# 6. Ready when worker 0's engine answers /health on port 8000.
if [ "$WORKER" = "0" ]; then
  until curl -sf --max-time 5 http://127.0.0.1:8000/health >/dev/null; do sleep 10; done
  echo "inferstack: engine healthy on port 8000"
fi
