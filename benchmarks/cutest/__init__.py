"""CUTEst validation and benchmark harness for diffops' sparse Jacobians and Hessians.

``python -m benchmarks.cutest --help``; see ``benchmarks/cutest/README.md``.
"""
