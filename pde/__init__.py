"""diffdyn.pde"""
