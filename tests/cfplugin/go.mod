module cfplugin

go 1.19
