# diplomat: migrations, then uvicorn. Build: docker build -t diplomat .
FROM python:3.11-slim-bookworm

# WeasyPrint's system libraries (Pango, HarfBuzz) and fonts for PDFs.
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0 fonts-dejavu-core \
 && rm -rf /var/lib/apt/lists/*

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    DIPLOMAT_ENVIRONMENT=production \
    DIPLOMAT_VAR_DIR=/var/lib/diplomat

RUN useradd --system --create-home --home-dir /srv/diplomat --uid 10001 diplomat \
 && mkdir -p /var/lib/diplomat && chown diplomat /var/lib/diplomat
WORKDIR /srv/diplomat/app

COPY --chown=diplomat pyproject.toml constraints.txt README.md alembic.ini ./
COPY --chown=diplomat app ./app
COPY --chown=diplomat migrations ./migrations
# Editable, so the app finds alembic.ini and migrations/ beside it.
RUN pip install -c constraints.txt -e .

USER diplomat
EXPOSE 8000
VOLUME ["/var/lib/diplomat"]
HEALTHCHECK --interval=30s --timeout=5s CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz').status != 200)"

# WEB_CONCURRENCY sets the number of uvicorn workers (default 2).
CMD ["sh", "-c", "diplomat db upgrade && exec uvicorn app.main:app --host 0.0.0.0 --port 8000 --proxy-headers --forwarded-allow-ips='*' --workers ${WEB_CONCURRENCY:-2}"]
