# rtbench: the harness (Locust + plugin) and the reference targets, in one image.
# docker compose runs every service from it (see docker-compose.yml); Node is not needed at run time.
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Dependencies first, from pyproject, so editing scenarios or targets does not reinstall them.
COPY pyproject.toml README.md ./
COPY harness ./harness
COPY targets ./targets
RUN pip install .

COPY scenarios ./scenarios

# Locust web UI, Locust master <-> workers, the targets' default ports.
EXPOSE 8089 5557 3001 3002 6001 8081

CMD ["locust", "-f", "scenarios/socketio.py"]
