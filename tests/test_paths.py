"""paths: where the settings file, the state and check.conf live under a root."""

from onedesk_azuread.paths import Paths


def test_under_is_the_cli_s_view_a_file_named_on_this_machine(tmp_path):
    root = str(tmp_path)
    assert Paths.under() == Paths("/", "/root/.OneDesk", "/var/lib/onedesk-azuread")
    assert Paths.under(root) == Paths(root, f"{root}/root/.OneDesk",
                                      f"{root}/var/lib/onedesk-azuread")
    # --file is a path on this machine, not inside the root
    assert Paths.under(root, "/etc/onedesk").settings == "/etc/onedesk"
    assert Paths.under(root + "/x/..").root == root


def test_inside_is_the_package_managers_view_a_file_inside_the_installroot(tmp_path):
    root = str(tmp_path)
    assert Paths.inside(None) == Paths.under()
    assert Paths.inside(root, "/etc/onedesk").settings == f"{root}/etc/onedesk"
    assert Paths.inside(root).state_dir == Paths.under(root).state_dir


def test_check_conf_and_configured_paths_are_inside_the_root(tmp_path):
    paths = Paths.under(str(tmp_path))
    assert paths.check_conf == f"{tmp_path}/etc/onedesk-azuread/check.conf"
    assert paths.inside_root("/var/lib/node_exporter/x.prom") == \
        f"{tmp_path}/var/lib/node_exporter/x.prom"
