"""Reports: the xlsx writer, the monthly statistical report and the annual carbon ledger."""
