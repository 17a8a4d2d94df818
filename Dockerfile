# syntax=docker/dockerfile:1
# The one image behind every Mnemo service in docker-compose.yml: `mnemo api`, `mnemo worker`,
# `mnemo db upgrade`. The entrypoint is the `mnemo` command, so a service's command is the subcommand.
FROM python:3.11-slim

# litellm fetches its model price list from the network at import unless told to use its bundled copy.
ENV LITELLM_LOCAL_MODEL_COST_MAP=True \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN useradd --create-home --uid 10001 --user-group mnemo

# Dependencies first, from pyproject.toml alone, so a source change does not reinstall them.
RUN --mount=type=bind,source=pyproject.toml,target=/tmp/pyproject.toml \
    python -c "import tomllib; print('\n'.join(tomllib.load(open('/tmp/pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install --no-cache-dir --disable-pip-version-check -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

# Then Mnemo itself, from a read-write bind of the build context: the build's scratch files stay out
# of the image, and so does the source tree.
RUN --mount=type=bind,target=/src,rw \
    pip install --no-cache-dir --disable-pip-version-check --no-deps /src

USER mnemo
WORKDIR /home/mnemo
EXPOSE 8283
ENTRYPOINT ["mnemo"]
CMD ["--help"]
