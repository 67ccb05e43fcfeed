@echo off
rem The course's launcher on Windows: sets everything up on first use, then runs the `course` command.
rem
rem   course open    open the course in JupyterLab     (in PowerShell: .\course open)
rem   course test    run the whole test suite
rem   course help    every subcommand (workbook, progress, slides, ...)
rem
rem The first run makes a virtual environment in .venv and installs the course into it (a few
rem minutes); later runs find it ready and start at once. COURSE_TORCH sets the PyTorch requirement,
rem COURSE_EXTRAS optional extras of the course (set COURSE_EXTRAS=instructor: nbgrader).
setlocal
set "HERE=%~dp0"
set "VENV=%HERE%.venv"
if not defined COURSE_TORCH set "COURSE_TORCH=torch==2.13.0"
set "STAMP=%VENV%\.course-installed"
set "TARGET=%HERE%."
if defined COURSE_EXTRAS set "TARGET=%HERE%.[%COURSE_EXTRAS%]"
for %%F in ("%HERE%pyproject.toml") do set "WANTED=%COURSE_TORCH% %%~tF %%~zF %COURSE_EXTRAS%"

set "DONE="
if exist "%VENV%\Scripts\course.exe" if exist "%STAMP%" set /p DONE=<"%STAMP%"
if not "%DONE%"=="%WANTED%" goto setup
echo course: using the environment in %VENV% (set up already) 1>&2
goto run

:setup
rem What the installation was made from (pyproject.toml's time and size, the torch asked for) changed, or none yet.

set "PY=python"
where py >nul 2>nul && set "PY=py -3"
%PY% -c "import sys; sys.exit(sys.version_info < (3, 11))" 2>nul
if errorlevel 1 goto nopython
if exist "%VENV%\Scripts\python.exe" goto install
echo course: first use: making a virtual environment in %VENV% 1>&2
%PY% -m venv "%VENV%" || exit /b 1

:install
echo course: installing the course and its packages ^(%COURSE_TORCH%^) into it: a few minutes, once 1>&2
"%VENV%\Scripts\python.exe" -m pip install --quiet --disable-pip-version-check "%COURSE_TORCH%" -e "%TARGET%" || exit /b 1
>"%STAMP%" echo %WANTED%
echo course: set up; next time this step is skipped 1>&2

:run
set "FIRST=%~1"
if /i "%FIRST%"=="help" goto help
"%VENV%\Scripts\course.exe" %*
exit /b %ERRORLEVEL%

:help
"%VENV%\Scripts\course.exe" --help
exit /b %ERRORLEVEL%

:nopython
echo course: the course needs Python 3.11 or newer: install it from python.org 1>&2
exit /b 1
