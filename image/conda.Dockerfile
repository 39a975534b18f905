# gpubot's second environment: the Jupyter image (image/Dockerfile) with conda ready in
# every terminal, as the lab's hand-made containers had it. Build it after the first:
#
#   docker build -t gpubot-jupyter:latest image/
#   docker build -t gpubot-jupyter-conda:latest -f image/conda.Dockerfile image/
#
# and offer both: GPUBOT_ENVIRONMENTS=default=gpubot-jupyter:latest,conda=gpubot-jupyter-conda:latest
#
# conda itself comes from CONDA_IMAGE's /opt/conda (Miniforge: conda and mamba, the
# conda-forge channel); it is self-contained (its own Python and libraries), so any base
# works. JupyterLab keeps running from the image's own Python; conda is the users'.
# CI builds this recipe on the debootstrap base with a conda-shaped stand-in as
# CONDA_IMAGE (tests/infra/build_images.sh): no conda distribution is reachable there.
ARG BASE_IMAGE=gpubot-jupyter:latest
ARG CONDA_IMAGE=condaforge/miniforge3:24.11.3-0
FROM ${CONDA_IMAGE} AS conda
FROM ${BASE_IMAGE}

USER root
COPY --from=conda /opt/conda /opt/conda
COPY conda-setup.sh /usr/local/share/gpubot/conda-setup.sh
RUN sh /usr/local/share/gpubot/conda-setup.sh
LABEL org.opencontainers.image.title="gpubot-jupyter-conda" \
      org.opencontainers.image.description="JupyterLab for gpubot GPU leases, conda in the terminal"

USER 1000:1000
