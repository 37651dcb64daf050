"""nima_enhance: NIMA aesthetic scoring and perceptual image enhancement."""

import setuptools

CONSOLE_SCRIPTS = [
    "nima-train=nima_enhance.bin.nima_train:run",
    "nima-eval=nima_enhance.bin.nima_eval:run",
    "nima-score=nima_enhance.bin.nima_score:run",
    "prep-targets=nima_enhance.bin.prep_targets:run",
    "enhance-train=nima_enhance.bin.enhance_train:run",
    "enhance-eval=nima_enhance.bin.enhance_eval:run",
    "enhance=nima_enhance.bin.enhance:run",
    "gamma-sweep=nima_enhance.bin.gamma_sweep:run",
    "nima-export=nima_enhance.bin.nima_export:run",
    "nima-enhance-demo=nima_enhance.bin.demo:run",
    "build-tfds=nima_enhance.bin.build_tfds:run",
]

setuptools.setup(
    name="nima_enhance",
    version="0.1.0",
    description=("Learned Perceptual Image Enhancement (Talebi & Milanfar): NIMA "
                 "aesthetic scoring and CAN enhancement with a NIMA loss."),
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    # The repo's top-level gin/ folder ships as package data under
    # nima_enhance.configs, so binaries find "nima/mobilenet.gin" when installed.
    packages=setuptools.find_packages(include=["nima_enhance", "nima_enhance.*",
                                               "data_prep", "data_prep.*"])
    + ["nima_enhance.configs"],
    package_dir={"nima_enhance.configs": "gin"},
    package_data={"nima_enhance.configs": ["*/*.gin", "*.gin"]},
    include_package_data=True,
    install_requires=[
        "tensorflow>=2.16",
        "tensorboard",  # tf.summary needs it; TF 2.21 no longer pulls it in
        "tensorflow-datasets",
        "numpy",
        "scipy",
        "absl-py",
        "gin-config>=0.5",
        "scikit-image",
        "pillow",
        "tifffile",  # 8/16-bit TIFF reading (data/images.py)
        "tqdm",
        "matplotlib",
    ],
    extras_require={
        "test": ["pytest", "pytest-timeout"],
        # prep-targets --runner and Beam TFDS builds (docs/scaling.md).
        "beam": ["apache-beam>=2.50"],
        # The Halide peer of tools/benchmarks/local_laplacian.py (optional;
        # the benchmark says "not measured" without it). Not a test dep.
        "bench": ["halide>=21"],
    },
    entry_points={"console_scripts": CONSOLE_SCRIPTS},
)
