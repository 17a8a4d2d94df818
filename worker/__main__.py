"""`python -m worker`: same as `mnemo worker`."""

from worker.main import run_forever

if __name__ == "__main__":
    run_forever()
