"""The `srgan` command line (`main`), its sub-commands (`commands`) and the offline paths (`offline`)."""
