from .grid import make_grid, save_png, to_uint8

__all__ = ["make_grid", "save_png", "to_uint8"]
