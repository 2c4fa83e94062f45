# syntax=docker/dockerfile:1
# The function pool's image: `pip install .` of this project (what the README's set-up installs), run as a
# non-root user with `gunicorn -c gunicorn.conf.py app`, ready for a read-only root filesystem.
#
#   docker build -t statefun-workers:0.1.0 .
#   docker run --rm -p 8000:8000 --read-only --tmpfs /tmp statefun-workers:0.1.0
#
# Your own functions: build FROM this image, COPY your module into /app and set STATEFUN_FUNCTIONS
# (deploy/user-functions/Dockerfile, README "Deploying").
#
# The base images are the official Python images unless BUILD_IMAGE and RUNTIME_IMAGE name others. Both must
# have the same Python at the same path (the build stage's virtualenv points at it), the build one a C
# compiler and Python's headers too; scripts/debian-base-images.sh makes such a pair from Debian's packages
# where no container registry is reachable (the test suite builds the image that way).

ARG PYTHON_VERSION=3.12
ARG BUILD_IMAGE=python:${PYTHON_VERSION}
ARG RUNTIME_IMAGE=python:${PYTHON_VERSION}-slim

# ---- build: install the project and its dependencies into a virtualenv --------------------------------------
# setup.py compiles the hot modules with mypyc, and fails the build when it cannot (no silent slow image).
FROM ${BUILD_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
RUN python3 -m venv /opt/venv
WORKDIR /src
# Only what `pip install .` reads (pyproject.toml names README.md as the long description).
COPY pyproject.toml setup.py README.md ./
COPY statefun_workers ./statefun_workers
# The check runs isolated (-I) so that it imports the installed package, not the source in /src.
RUN /opt/venv/bin/pip install . \
    && /opt/venv/bin/python -I -m statefun_workers.build_info

# ---- runtime ----------------------------------------------------------------------------------------------
FROM ${RUNTIME_IMAGE}
# No .pyc written at run time (the root filesystem may be read-only; they are compiled below instead),
# logs unbuffered, the venv first on PATH.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/venv/bin:$PATH \
    PORT=8000
# A fixed numeric uid/gid, so Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
RUN groupadd --system --gid 10001 statefun \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin statefun
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
# The entry points the CMD runs from the working directory, and the bundled example functions.
COPY app.py gunicorn.conf.py ./
COPY examples ./examples
# Owned by root and not writable by the runtime user; compiled now, since nothing may be written later.
RUN python3 -m compileall -q /app
USER 10001:10001
EXPOSE 8000
CMD ["gunicorn", "-c", "gunicorn.conf.py", "app"]
