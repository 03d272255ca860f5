<#
.SYNOPSIS
    Installs the ServerSan agent on Windows.

.DESCRIPTION
    In an elevated PowerShell (Run as administrator):

        & ([scriptblock]::Create((irm https://mon.example/install.ps1))) AUTH_CODE

    Installs, in %ProgramData%\ServerSan (readable only by SYSTEM and
    Administrators, inheritance removed):
        serversan-agent.exe   from -Binary, else downloaded from
                              <server>/agent/windows-<arch>
        auth.log              the auth code
        agent.toml            server = "<URL>" (other settings are kept)
        state\                the agent's state and spool
    and a Scheduled Task "ServerSan Agent" that runs
    "serversan-agent.exe report" every minute as SYSTEM.

    Running it again with a new code replaces the code (that is /reinstall in
    the bot) and updates the agent. -Uninstall removes all of the above.
    The auth code is never printed.

.PARAMETER AuthCode
    The code the ServerSan bot gave for this server (/add or /reinstall).

.PARAMETER Server
    The ServerSan server. Default: the one this script came from, else the
    one already configured.

.PARAMETER Binary
    Install this serversan-agent.exe instead of downloading it.

.PARAMETER Uninstall
    Remove the agent, its files and its Scheduled Task.
#>
[CmdletBinding()]
param(
    [Parameter(Position = 0)]
    [string] $AuthCode = '',
    [string] $Server = '',
    [string] $Binary = '',
    [switch] $Uninstall
)

Set-StrictMode -Version 2.0
$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'

# The ServerSan server that serves this script writes its public URL between
# the quotes of the next line; nothing else in the file is changed.
$DefaultServer = ''

$TaskName = 'ServerSan Agent'
# Auth code: <key_id>.<secret>; key_id 8-32 letters or digits, secret
# base64url (no padding) of 32 to 128 bytes. \z: .NET's $ accepts a final newline.
$CodePattern = '^[A-Za-z0-9]{8,32}\.[A-Za-z0-9_-]{43,172}\z'
# Server URL: http(s), a host, an optional port and path; no query, no
# quotes, no spaces, nothing PowerShell or TOML would read specially.
$UrlPattern = '^https?://[A-Za-z0-9._~:%\[\]-][A-Za-z0-9._~:/%\[\]-]*\z'
$SystemSid = 'S-1-5-18'
$AdministratorsSid = 'S-1-5-32-544'

function Write-Step([string] $Message) {
    Write-Host "serversan: $Message"
}

function Test-AuthCode([string] $Code) {
    if ($Code -cnotmatch $CodePattern) { return $false }
    # Base64 without padding never leaves a single character over.
    return (($Code.Split('.')[1].Length % 4) -ne 1)
}

function Test-ServerUrl([string] $Url) {
    return ($Url.Length -le 2048 -and $Url -cmatch $UrlPattern)
}

function Test-Administrator {
    $identity = [Security.Principal.WindowsIdentity]::GetCurrent()
    $principal = New-Object Security.Principal.WindowsPrincipal($identity)
    return $principal.IsInRole([Security.Principal.WindowsBuiltInRole]::Administrator)
}

function Get-Paths {
    $dir = Join-Path $env:ProgramData 'ServerSan'
    return @{
        Dir      = $dir
        AuthFile = Join-Path $dir 'auth.log'
        ConfFile = Join-Path $dir 'agent.toml'
        StateDir = Join-Path $dir 'state'
        Exe      = Join-Path $dir 'serversan-agent.exe'
    }
}

function Get-AgentPlatform {
    $arch = $env:PROCESSOR_ARCHITEW6432
    if (-not $arch) { $arch = $env:PROCESSOR_ARCHITECTURE }
    switch ($arch) {
        'AMD64' { return 'windows-x86_64' }
        'ARM64' { return 'windows-aarch64' }
        default { throw "no ServerSan agent is built for $arch; build it and pass -Binary PATH" }
    }
}

# The installed agent.toml's lines, or none.
function Get-OldConfig($Paths) {
    if (Test-Path -LiteralPath $Paths.ConfFile -PathType Leaf) {
        return @(Get-Content -LiteralPath $Paths.ConfFile)
    }
    return @()
}

# The server URL from -Server, else the preset, else the installed agent.toml.
function Resolve-Server($Paths) {
    $url = $Server
    if (-not $url) { $url = $DefaultServer }
    if (-not $url) {
        foreach ($line in (Get-OldConfig $Paths)) {
            if ($line -match '^\s*server\s*=\s*"([^"]*)"') {
                $url = $Matches[1]
                break
            }
        }
    }
    if (-not $url) { throw 'no server URL: pass -Server https://your.serversan.server' }
    if (-not (Test-ServerUrl $url)) {
        throw 'the server URL must look like https://host[:port][/path] (http also works), without quotes, spaces, query or fragment'
    }
    return $url.TrimEnd('/')
}

# An ACL that lets only SYSTEM and Administrators in, inherited by everything
# inside, with nothing inherited from %ProgramData% (where Users may read).
function New-RestrictedAcl {
    $acl = New-Object System.Security.AccessControl.DirectorySecurity
    $acl.SetAccessRuleProtection($true, $false)
    foreach ($sid in @($SystemSid, $AdministratorsSid)) {
        $identity = New-Object System.Security.Principal.SecurityIdentifier($sid)
        $rule = New-Object System.Security.AccessControl.FileSystemAccessRule(
            $identity, 'FullControl', 'ContainerInherit, ObjectInherit', 'None', 'Allow')
        $acl.AddAccessRule($rule)
    }
    $acl.SetOwner((New-Object System.Security.Principal.SecurityIdentifier($AdministratorsSid)))
    return $acl
}

# Creates the directory, or takes over one this installer made before; never
# one that someone else prepared (a link, or a folder a user created to keep
# rights over what goes in it).
function Initialize-AgentDirectory($Paths) {
    $dir = $Paths.Dir
    $fresh = $false
    if (Test-Path -LiteralPath $dir) {
        $item = Get-Item -LiteralPath $dir -Force
        if (-not $item.PSIsContainer -or ($item.Attributes -band [IO.FileAttributes]::ReparsePoint)) {
            throw "$dir exists and is not a plain folder; remove it and run this installer again"
        }
        $owner = (Get-Acl -LiteralPath $dir).GetOwner([Security.Principal.SecurityIdentifier]).Value
        $me = [Security.Principal.WindowsIdentity]::GetCurrent().User.Value
        if (@($SystemSid, $AdministratorsSid, $me) -notcontains $owner) {
            throw "$dir exists and belongs to $owner, not to Administrators; check it, remove it and run this installer again"
        }
    } else {
        New-Item -ItemType Directory -Path $dir | Out-Null
        $fresh = $true
    }
    Set-Acl -LiteralPath $dir -AclObject (New-RestrictedAcl)
    $acl = Get-Acl -LiteralPath $dir
    foreach ($rule in $acl.Access) {
        $sid = $rule.IdentityReference.Translate([Security.Principal.SecurityIdentifier]).Value
        if (@($SystemSid, $AdministratorsSid) -notcontains $sid) {
            throw "could not restrict $dir to SYSTEM and Administrators ($sid still has access)"
        }
    }
    if (-not $acl.AreAccessRulesProtected) {
        throw "could not remove inherited permissions from $dir"
    }
    if ($fresh -and @(Get-ChildItem -LiteralPath $dir -Force).Count -gt 0) {
        throw "something was created in $dir while it was being secured; remove $dir and run this installer again"
    }
    if (-not (Test-Path -LiteralPath $Paths.StateDir)) {
        New-Item -ItemType Directory -Path $Paths.StateDir | Out-Null
    }
}

# Writes $Content (UTF-8 without BOM) beside $Path, then swaps it in, so no
# reader ever sees half a file. The new file inherits the folder's ACL.
function Write-FileAtomic([string] $Path, [string] $Content) {
    $tmp = "$Path.new-" + [Guid]::NewGuid().ToString('N')
    [IO.File]::WriteAllText($tmp, $Content, (New-Object Text.UTF8Encoding($false)))
    if (Test-Path -LiteralPath $Path) {
        # [NullString]: a plain $null would reach .NET as "" (no backup wanted).
        [IO.File]::Replace($tmp, $Path, [NullString]::Value)
    } else {
        [IO.File]::Move($tmp, $Path)
    }
}

# Sets "server" and keeps every other line a user added (a CA file, say).
function Write-AgentConfig($Paths, [string] $Url) {
    $header = '# ServerSan agent settings (the installer sets "server"; other lines are kept).'
    $lines = New-Object System.Collections.Generic.List[string]
    $lines.Add($header)
    $lines.Add("server = `"$Url`"")
    $inTable = $false
    foreach ($line in (Get-OldConfig $Paths)) {
        if ($line -match '^\s*\[') { $inTable = $true }
        if (-not $inTable -and $line -match '^\s*server\s*=') { continue }
        if ($line -eq $header) { continue }
        $lines.Add($line)
    }
    Write-FileAtomic $Paths.ConfFile (($lines -join "`n") + "`n")
}

function Test-WindowsExecutable([string] $Path) {
    if ((Get-Item -LiteralPath $Path).Length -lt 64) { return $false }
    $stream = [IO.File]::OpenRead($Path)
    try {
        $m = $stream.ReadByte()
        $z = $stream.ReadByte()
    } finally {
        $stream.Dispose()
    }
    return ($m -eq 0x4D -and $z -eq 0x5A)
}

function Install-AgentBinary($Paths, [string] $Url) {
    $tmp = $Paths.Exe + '.new-' + [Guid]::NewGuid().ToString('N')
    try {
        if ($Binary) {
            Copy-Item -LiteralPath $Binary -Destination $tmp
        } else {
            $from = "$Url/agent/$(Get-AgentPlatform)"
            Write-Step "downloading the agent from $from"
            [Net.ServicePointManager]::SecurityProtocol = [Net.ServicePointManager]::SecurityProtocol -bor [Net.SecurityProtocolType]::Tls12
            try {
                Invoke-WebRequest -Uri $from -OutFile $tmp -UseBasicParsing -TimeoutSec 300
            } catch {
                throw "could not download the agent from ${from}: $($_.Exception.Message) (or pass -Binary PATH)"
            }
        }
        if (-not (Test-WindowsExecutable $tmp)) {
            throw 'the agent binary is not a Windows executable (empty, or no MZ header)'
        }
        # A running .exe cannot be overwritten but can be renamed.
        $old = $Paths.Exe + '.old'
        if (Test-Path -LiteralPath $old) { Remove-Item -LiteralPath $old -Force -ErrorAction SilentlyContinue }
        if (Test-Path -LiteralPath $Paths.Exe) { Move-Item -LiteralPath $Paths.Exe -Destination $old -Force }
        Move-Item -LiteralPath $tmp -Destination $Paths.Exe
        Remove-Item -LiteralPath $old -Force -ErrorAction SilentlyContinue
    } finally {
        if (Test-Path -LiteralPath $tmp) { Remove-Item -LiteralPath $tmp -Force }
    }
}

# The task as XML: the only form that repeats every minute forever on every
# Windows version, and names SYSTEM by SID (names are translated).
function Get-TaskXml($Paths) {
    $exe = [Security.SecurityElement]::Escape($Paths.Exe)
    $dir = [Security.SecurityElement]::Escape($Paths.Dir)
    $start = (Get-Date).ToString('s')
    return @"
<?xml version="1.0" encoding="UTF-16"?>
<Task version="1.2" xmlns="http://schemas.microsoft.com/windows/2004/02/mit/task">
  <RegistrationInfo>
    <Description>ServerSan agent: sends one report a minute. Written by install.ps1; install.ps1 -Uninstall removes it.</Description>
  </RegistrationInfo>
  <Triggers>
    <TimeTrigger>
      <StartBoundary>$start</StartBoundary>
      <Repetition>
        <Interval>PT1M</Interval>
        <StopAtDurationEnd>false</StopAtDurationEnd>
      </Repetition>
      <Enabled>true</Enabled>
    </TimeTrigger>
  </Triggers>
  <Principals>
    <Principal id="Author">
      <UserId>$SystemSid</UserId>
      <RunLevel>HighestAvailable</RunLevel>
    </Principal>
  </Principals>
  <Settings>
    <MultipleInstancesPolicy>IgnoreNew</MultipleInstancesPolicy>
    <DisallowStartIfOnBatteries>false</DisallowStartIfOnBatteries>
    <StopIfGoingOnBatteries>false</StopIfGoingOnBatteries>
    <StartWhenAvailable>true</StartWhenAvailable>
    <RunOnlyIfNetworkAvailable>false</RunOnlyIfNetworkAvailable>
    <IdleSettings>
      <StopOnIdleEnd>false</StopOnIdleEnd>
      <RestartOnIdle>false</RestartOnIdle>
    </IdleSettings>
    <AllowStartOnDemand>true</AllowStartOnDemand>
    <Enabled>true</Enabled>
    <Hidden>false</Hidden>
    <ExecutionTimeLimit>PT5M</ExecutionTimeLimit>
    <Priority>7</Priority>
  </Settings>
  <Actions Context="Author">
    <Exec>
      <Command>$exe</Command>
      <Arguments>report</Arguments>
      <WorkingDirectory>$dir</WorkingDirectory>
    </Exec>
  </Actions>
</Task>
"@
}

function Get-AgentTask {
    return Get-ScheduledTask -TaskName $TaskName -TaskPath '\' -ErrorAction SilentlyContinue
}

function Stop-AgentTask {
    if (Get-AgentTask) {
        Stop-ScheduledTask -TaskName $TaskName -TaskPath '\' -ErrorAction SilentlyContinue
    }
}

function Register-AgentTask($Paths) {
    Register-ScheduledTask -TaskName $TaskName -TaskPath '\' -Xml (Get-TaskXml $Paths) -Force | Out-Null
    Write-Step "scheduled every minute as SYSTEM (Task Scheduler: $TaskName)"
}

# Runs the agent once, so the user sees at once whether the server accepts
# this host.
function Invoke-FirstReport($Paths, [string] $Url) {
    # What the agent writes to stderr is for the user, not an error to stop on.
    $ErrorActionPreference = 'Continue'
    Write-Step "sending a first report to $Url"
    & $Paths.Exe report
    if ($LASTEXITCODE -eq 0) {
        Write-Step 'the server accepted the first report: this host now reports every minute'
    } else {
        Write-Warning "serversan: the first report did not reach the server (exit status $LASTEXITCODE, see above); the agent tries again every minute"
    }
}

# Checks the arguments before anything is touched.
function Assert-InstallArguments {
    if (-not $AuthCode) {
        throw 'the auth code is missing: the bot gives it with /add or /reinstall'
    }
    if (-not (Test-AuthCode $AuthCode)) {
        throw 'that is not a ServerSan auth code (KEY.SECRET as the bot gave it); nothing was changed'
    }
    if ($Binary -and -not (Test-Path -LiteralPath $Binary -PathType Leaf)) {
        throw "-Binary $Binary is not a file; nothing was changed"
    }
}

function Install-Agent {
    $paths = Get-Paths
    $url = Resolve-Server $paths
    Initialize-AgentDirectory $paths
    Write-FileAtomic $paths.AuthFile ($AuthCode + "`n")
    Write-AgentConfig $paths $url
    Stop-AgentTask
    Install-AgentBinary $paths $url
    Register-AgentTask $paths
    Write-Step "installed the ServerSan agent for $url"
    Invoke-FirstReport $paths $url
}

function Uninstall-Agent {
    $paths = Get-Paths
    if (Get-AgentTask) {
        Stop-AgentTask
        Unregister-ScheduledTask -TaskName $TaskName -TaskPath '\' -Confirm:$false
    }
    if (Test-Path -LiteralPath $paths.Dir) {
        $item = Get-Item -LiteralPath $paths.Dir -Force
        if ($item.Attributes -band [IO.FileAttributes]::ReparsePoint) {
            # A link: remove the link, never what it points to.
            [IO.Directory]::Delete($paths.Dir, $false)
        } else {
            Remove-Item -LiteralPath $paths.Dir -Recurse -Force
        }
    }
    Write-Step 'removed the ServerSan agent, its files and its Scheduled Task'
}

function Invoke-Main {
    if ([Environment]::OSVersion.Platform -ne [PlatformID]::Win32NT) {
        throw 'this installer is for Windows (use install.sh on Linux)'
    }
    if (-not $Uninstall) {
        Assert-InstallArguments
    }
    if (-not (Test-Administrator)) {
        throw 'this installer must run as an administrator: open PowerShell with "Run as administrator" and run it again'
    }
    if ($Uninstall) {
        Uninstall-Agent
    } else {
        Install-Agent
    }
}

try {
    Invoke-Main
} catch {
    Write-Host "serversan: error: $($_.Exception.Message)" -ForegroundColor Red
    # From a file (powershell -File install.ps1) the exit status tells; from a
    # pasted one-liner, exit would close the user's window.
    if ($PSCommandPath) { exit 1 }
    $global:LASTEXITCODE = 1
}
