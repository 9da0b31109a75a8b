#include <string>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <unistd.h>
#include <sys/resource.h>
static long rss_kb(){ long a,b; FILE*f=fopen("/proc/self/statm","r"); if(fscanf(f,"%ld %ld",&a,&b)!=2) b=0; fclose(f); return b*4; }
static long flt(){ struct rusage u; getrusage(RUSAGE_SELF,&u); return u.ru_minflt; }
// usage: strrounds ROUNDS MB [SLEEP_MS between rounds]
int main(int argc,char**argv){
  long n=atol(argv[1]); size_t mb=atol(argv[2]); long sleep_ms=argc>3?atol(argv[3]):0;
  char chunk[8192]; memset(chunk,'x',sizeof chunk);
  for(long r=0;r<n;r++){ long f0=flt(); long peak=0; std::string s; size_t cap=s.capacity();
    while(s.size()<(mb<<20)){ s.append(chunk,sizeof chunk); if(s.capacity()!=cap){cap=s.capacity(); long x=rss_kb(); if(x>peak)peak=x;} }
    long x=rss_kb(); if(x>peak)peak=x;
    if(sleep_ms) usleep(sleep_ms*1000);
    printf("round %ld: faults %ld peak-rss-at-growth %ld KB\n", r, flt()-f0, peak);
  }
}
