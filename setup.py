from setuptools import find_packages, setup

setup(
    name="onedesk-azuread",
    version="0.1.0",
    description="Safely manage the Azure AD sign-in settings of an on-premise OneDesk server",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="MIT",
    packages=find_packages(include=["onedesk_azuread", "onedesk_azuread.*"]),
    python_requires=">=3.9",
    install_requires=[
        "click>=8.0.3",
        "configobj>=5.0.6",
        "msal>=1.32.3",
    ],
    extras_require={
        "test": [
            "pytest>=7",
            "hypothesis>=6",
            "trustme>=1.0",
            "ruff",
            "vermin",
            # tests/test_ansible.py runs the README's playbook (the host stage only: the
            # controller needs Python 3.10+). pip picks 2.19 on Debian 12's 3.11 and 2.21
            # on Debian 13's 3.13; the upper bound keeps an untried release out.
            "ansible-core>=2.17,<2.22; python_version >= '3.10'",
        ],
    },
    entry_points={
        "console_scripts": [
            "onedesk-azuread = onedesk_azuread.cli:main",
            # What dnf 5's actions file runs: no click to import, three times a transaction.
            "onedesk-azuread-dnf5-hook = onedesk_azuread.dnf5hook:main",
        ],
    },
    classifiers=[
        "Environment :: Console",
        "Operating System :: POSIX :: Linux",
        "Programming Language :: Python :: 3 :: Only",
        "Topic :: System :: Systems Administration",
    ],
)
