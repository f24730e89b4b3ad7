# One image for every `replenish` command in docker-compose.yml (migrate, broker setup, gateway,
# serve, devices provision, sim): the command is the compose service's `command`.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Dependencies first, from pyproject.toml alone, so a code change does not reinstall them.
COPY pyproject.toml README.md ./
RUN pip install . && pip uninstall -y replenish && rm -rf build *.egg-info

# The project itself, a plain install: the Alembic scripts ship inside the package
# (replenish/storage/migrations), as in any `pip install .`.
COPY gateway ./gateway
COPY replenish ./replenish
COPY firmware_sim ./firmware_sim
RUN pip install --no-deps . && rm -rf build *.egg-info \
    && groupadd --system --gid 10001 replenish \
    && useradd --system --uid 10001 --gid replenish --home-dir /app --no-create-home replenish \
    && mkdir -p /creds \
    && chown replenish:replenish /creds

# /creds is where `replenish devices provision` writes the simulated fleet's credentials; a new
# named volume mounted there takes this owner, so the non-root user can write it.
USER replenish
EXPOSE 8000
ENTRYPOINT ["replenish"]
CMD ["--help"]
