# Test stand-in for conda's shell hook: like the real one, it defines a `conda` shell
# function whose `activate` changes the current shell (here: CONDA_DEFAULT_ENV, PATH).
conda() {
    if [ "${1:-}" = activate ]; then
        CONDA_DEFAULT_ENV=${2:-base}
        export CONDA_DEFAULT_ENV
        case ":$PATH:" in *":/opt/conda/bin:"*) ;; *) PATH="/opt/conda/bin:$PATH" ;; esac
        export PATH
    else
        command /opt/conda/bin/conda "$@"
    fi
}
