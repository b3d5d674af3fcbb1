# diplomat: the web service. Build: docker build -t diplomat .
# Migrations are a separate step, never run at start (two containers starting together
# would race, and a failed migration would keep restarting):
#   docker run --rm --env-file diplomat.env diplomat diplomat db upgrade
FROM python:3.11-slim-bookworm

# WeasyPrint's system libraries (Pango, HarfBuzz) and fonts for PDFs.
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0 fonts-dejavu-core \
 && rm -rf /var/lib/apt/lists/*

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DIPLOMAT_ENVIRONMENT=production \
    DIPLOMAT_VAR_DIR=/var/lib/diplomat \
    DIPLOMAT_LOG_FORMAT=json
# The proxies whose X-Forwarded-For is believed (e.g. 10.0.0.0/8); empty: none, the peer is
# the client. Set it to the load balancer's address when there is one.
ENV DIPLOMAT_FORWARDED_ALLOW_IPS=""

RUN useradd --system --create-home --home-dir /srv/diplomat --uid 10001 diplomat \
 && mkdir -p /var/lib/diplomat && chown diplomat /var/lib/diplomat

WORKDIR /tmp/build
# The locked dependencies first (their layer is reused while only the code changes).
COPY requirements.lock ./
RUN pip install --require-hashes --no-deps -r requirements.lock
COPY pyproject.toml README.md ./
COPY app ./app
# The migrations ship inside the package (app/migrations), so `diplomat db upgrade` works
# from the installed copy; a non-editable install leaves no source tree behind.
COPY migrations ./app/migrations
RUN pybabel -q compile -d app/translations -D messages \
 && pip install --no-deps . \
 && cd / && rm -rf /tmp/build

WORKDIR /srv/diplomat
USER diplomat
EXPOSE 8000
VOLUME ["/var/lib/diplomat"]
# Liveness only: a database outage must not get the container restarted (/readyz tells
# a load balancer whether to send traffic here).
HEALTHCHECK --interval=30s --timeout=5s CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4).status != 200)"]

# WEB_CONCURRENCY sets the number of uvicorn workers (default 2).
CMD ["sh", "-c", "exec diplomat serve --host 0.0.0.0 --port 8000 --workers ${WEB_CONCURRENCY:-2}"]
