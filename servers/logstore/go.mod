module driftline/logstore

go 1.19
