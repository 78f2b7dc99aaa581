print('never run as CGI')
